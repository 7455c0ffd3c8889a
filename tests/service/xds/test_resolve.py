"""The replica's host-name resolver: pure, with a lookup and a clock of the
test's own (and one real lookup of localhost)."""
import threading
import time

from service.xds.resolve import HostnameResolver, lookup


class Lookups:
    def __init__(self, answers):
        self.answers = answers
        self.calls = []
        self.release = threading.Event()
        self.release.set()

    def __call__(self, name):
        self.calls.append(name)
        assert self.release.wait(10)
        answer = self.answers[name]
        if isinstance(answer, Exception):
            raise answer
        return answer


def resolver(lookups, clock=None, **options):
    now = clock or [0.0]
    options = {"refresh_after": 30.0, "timeout": 2.0, "max_names": 100, **options}
    return HostnameResolver(lookup=lookups, clock=lambda: now[0], **options), now


def test_answers_are_kept_for_refresh_after_then_looked_up_again():
    lookups = Lookups({"a.example": ("192.0.2.1",)})
    dns, now = resolver(lookups)
    assert dns.resolve(["a.example"]) == {"a.example": ("192.0.2.1",)}
    now[0] = 29.0
    assert dns.resolve(["a.example"]) == {"a.example": ("192.0.2.1",)} and lookups.calls == ["a.example"]
    lookups.answers["a.example"] = ("192.0.2.2",)
    now[0] = 30.0
    assert dns.resolve(["a.example"]) == {"a.example": ("192.0.2.2",)} and len(lookups.calls) == 2


def test_a_failing_lookup_keeps_the_last_addresses_and_a_name_never_resolved_has_none():
    lookups = Lookups({"a.example": ("192.0.2.1",), "nx.example": OSError("Name or service not known")})
    dns, now = resolver(lookups)
    dns.resolve(["a.example"])
    lookups.answers["a.example"] = OSError("SERVFAIL")
    now[0] = 31.0
    assert dns.resolve(["a.example", "nx.example"]) == {"a.example": ("192.0.2.1",), "nx.example": ()}
    assert dns.resolve(["nx.example"]) == {"nx.example": ()} and lookups.calls.count("nx.example") == 1  # not at once


def test_a_hung_lookup_costs_at_most_the_timeout_and_is_not_started_twice():
    lookups = Lookups({"slow.example": ("192.0.2.9",)})
    lookups.release.clear()
    dns, _ = resolver(lookups, timeout=0.2)
    started = time.monotonic()
    assert dns.resolve(["slow.example"]) == {"slow.example": ()}
    assert dns.resolve(["slow.example"]) == {"slow.example": ()}
    assert time.monotonic() - started < 2.0 and lookups.calls == ["slow.example"]
    lookups.release.set()
    deadline = time.monotonic() + 5
    while dns.resolve(["slow.example"]) != {"slow.example": ("192.0.2.9",)}:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    dns.close()


def test_at_most_max_names_are_kept_least_recently_used_first_out():
    lookups = Lookups({f"n{i}.example": (f"192.0.2.{i}",) for i in range(4)})
    dns, _ = resolver(lookups, max_names=2)
    dns.resolve(["n0.example", "n1.example"])
    dns.resolve(["n0.example"])  # used again: n1 is the oldest now
    dns.resolve(["n2.example"])
    dns.resolve(["n0.example", "n2.example"])
    assert lookups.calls.count("n0.example") == 1
    dns.resolve(["n1.example"])
    assert lookups.calls.count("n1.example") == 2


def test_localhost_resolves_to_its_ipv4_address_first():
    assert lookup("localhost") == ("127.0.0.1",)
