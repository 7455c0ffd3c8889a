"""Host names of endpoints, resolved where the translation is made.

EDS carries IP addresses only: Envoy refuses a host name in an EDS (or
STATIC) endpoint ("malformed IP address"), and proxyless gRPC NACKs it and
refuses STRICT_DNS clusters altogether. So a replica resolves the host names
of the meshes it serves and sends their addresses in EDS, each with the name
in ``Endpoint.hostname``; every cluster is EDS, for Envoy and gRPC alike.

A :class:`HostnameResolver` remembers what each name resolved to, for at most
``max_names`` names (least recently used go first), and looks a name up again
once its answer is ``refresh_after`` seconds old. Lookups run on a few threads
of its own (``getaddrinfo`` blocks and cannot be cancelled), never on the
event loop; a caller waits at most ``timeout`` seconds for them, and a name
whose lookup failed or is still running keeps the addresses it had (a name
never resolved has none, and is left out of EDS until it resolves); a failed
lookup is tried again in ``refresh_after`` seconds, like a good one. A lookup
already running for a name is not started twice, so a hung DNS server holds
at most ``threads`` threads.

IPv4 addresses are used when a name has any, else its IPv6 ones (what
Envoy's DNS clusters call V4_PREFERRED), at most ``MAX_ADDRESSES_PER_NAME``
of them, sorted.
"""
from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import lru_cache

logger = logging.getLogger("service.xds")

# A name is one endpoint in the tenant's quota: it may not fan out without bound.
MAX_ADDRESSES_PER_NAME = 32
LOOKUP_THREADS = 4

Addresses = tuple[str, ...]


@lru_cache(maxsize=65536)
def is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def lookup(name: str) -> Addresses:
    """The addresses ``name`` resolves to, IPv4 preferred (raises OSError)."""
    found = {info[4][0] for info in socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)}
    v4 = sorted(a for a in found if ":" not in a)
    return tuple((v4 or sorted(found))[:MAX_ADDRESSES_PER_NAME])


class HostnameResolver:
    """Thread-safe; one per process (:func:`get_resolver`)."""

    def __init__(self, *, refresh_after: float, timeout: float, max_names: int, threads: int = LOOKUP_THREADS,
                 lookup: Callable[[str], Addresses] = lookup, clock: Callable[[], float] = time.monotonic):
        self.refresh_after = refresh_after
        self.timeout = timeout
        self.max_names = max_names
        self._lookup = lookup
        self._clock = clock
        self._lock = threading.Lock()
        self._known: OrderedDict[str, tuple[Addresses, float]] = OrderedDict()  # name -> (addresses, looked up at)
        self._running: dict[str, Future] = {}
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="xds-dns")

    def resolve(self, names: Iterable[str]) -> dict[str, Addresses]:
        """Each name's addresses: remembered ones while fresh, else looked up
        now (waiting at most ``timeout``), else the last known, else ()."""
        names = set(names)
        now = self._clock()
        with self._lock:
            stale = [name for name in names
                     if name not in self._known or now - self._known[name][1] >= self.refresh_after]
            lookups = [self._start(name) for name in stale]
        if lookups:
            wait(lookups, timeout=self.timeout)
        with self._lock:
            found = {}
            for name in names:
                if name in self._known:
                    self._known.move_to_end(name)
                found[name] = self._known[name][0] if name in self._known else ()
            return found

    def _start(self, name: str) -> Future:
        running = self._running.get(name)
        if running is None:
            running = self._running[name] = self._executor.submit(self._look_up, name)
        return running

    def _look_up(self, name: str) -> None:
        try:
            addresses = self._lookup(name)
        except OSError as error:
            logger.info("could not resolve endpoint host name %s: %s", name, error)
            addresses = None
        with self._lock:
            del self._running[name]
            if not addresses:
                # Keep what it had (a failing DNS server does not empty EDS),
                # and ask again only in refresh_after.
                addresses = self._known[name][0] if name in self._known else ()
            self._known[name] = (addresses, self._clock())
            self._known.move_to_end(name)
            while len(self._known) > self.max_names:
                self._known.popitem(last=False)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


_resolver: HostnameResolver | None = None
_resolver_lock = threading.Lock()


def get_resolver() -> HostnameResolver:
    """The process's resolver, configured by the XDS_DNS_* settings."""
    global _resolver
    from django.conf import settings

    with _resolver_lock:
        if _resolver is None:
            _resolver = HostnameResolver(refresh_after=settings.XDS_DNS_REFRESH_SEC,
                                         timeout=settings.XDS_DNS_TIMEOUT_SEC, max_names=settings.XDS_DNS_CACHE_NAMES)
        return _resolver
