"""The probers against real loopback servers: for each protocol an answer
that is right, one that is wrong, one that never comes (past the timeout) and
a closed port; each result within its timeout. And the deny list: a denied
destination is never connected to."""
import asyncio
import time

import pytest

from tests.client.conftest import make_pki
from tests.workers.probe_servers import (
    closed_port,
    grpc_health_server,
    http2_server,
    http_server,
    server_tls,
    tcp_server,
    Seen,
)
from workers.probing import DenyList, Prober, ProbeSpec, ProbeTarget, Refused, probe_all, spec_of, user_agent
from workers.probing.destinations import resolve

REGION = "eu-test"
TIMEOUT = 1.0
# What a result may take past its timeout: the event loop's scheduling, not the probe.
MARGIN = 0.5
LOOPBACK_ALLOWED = DenyList.of(["169.254.0.0/16"], allow_loopback=True)


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 30))


async def probe_one(spec, port, address="127.0.0.1", deny=LOOPBACK_ALLOWED):
    started = time.monotonic()
    [result] = await probe_all(spec, [ProbeTarget("e1", address, port)], region=REGION, deny=deny)
    elapsed = time.monotonic() - started
    assert elapsed <= spec.timeout + MARGIN, (elapsed, result)
    return result


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def http_spec(protocol, path, **fields):
    return ProbeSpec(protocol=protocol, port=None, request_path=path, timeout=TIMEOUT, **fields)


def assert_http_cases(results, seen, port):
    healthy, bad_status, bad_body, hang, closed, wrong_port = results
    assert (healthy.ok, healthy.error) == (True, "")
    assert healthy.address == f"127.0.0.1:{port}" and healthy.latency_ms > 0
    assert not bad_status.ok and bad_status.error == "HTTP 503 (a healthy endpoint answers 200)"
    assert not bad_body.ok and "do not contain 'all good'" in bad_body.error
    assert not hang.ok and hang.error == f"no answer within {TIMEOUT:g} s" and hang.latency_ms is None
    assert not closed.ok and closed.error.startswith("connection refused by 127.0.0.1:")
    assert not wrong_port.ok and "refused" in wrong_port.error
    assert set(seen.user_agents) == {"Interlock-HealthCheck/1.0 (region=eu-test)"}
    assert seen.hosts[0] == "127.0.0.1"


async def http_cases(protocol, port, **fields):
    """healthy, wrong status, wrong body, hang, closed port (spec.port), closed port (target's port)."""
    return [
        await probe_one(http_spec(protocol, "/healthy", response="all good", **fields), port),
        await probe_one(http_spec(protocol, "/status", **fields), port),
        await probe_one(http_spec(protocol, "/body", response="all good", **fields), port),
        await probe_one(http_spec(protocol, "/hang", **fields), port),
        await probe_one(ProbeSpec(protocol, port=closed_port(), timeout=TIMEOUT, **fields), port),
        await probe_one(http_spec(protocol, "/healthy", **fields), closed_port()),
    ]


def test_http_right_wrong_hanging_and_closed():
    async def scenario():
        async with http_server() as (port, seen):
            assert_http_cases(await http_cases("HTTP", port), seen, port)

    run(scenario())


def test_https_without_verification_by_default_and_with_it_when_asked(pki):
    async def scenario():
        seen_tls = Seen()
        async with http_server(server_tls(pki, seen_tls)) as (port, seen):
            assert_http_cases(await http_cases("HTTPS", port), seen, port)
            # The test CA is in no trust store: a verifying probe refuses the certificate.
            verified = await probe_one(http_spec("HTTPS", "/healthy", verify_tls=True), port)
            assert not verified.ok and "not trusted" in verified.error
            # The check's host is the Host header and the SNI.
            named = await probe_one(http_spec("HTTPS", "/healthy", host="shop.example"), port)
            assert named.ok and seen.hosts[-1] == "shop.example" and seen_tls.snis[-1] == "shop.example"

    run(scenario())


def test_http2_prior_knowledge_h2c():
    async def scenario():
        async with http2_server() as (port, seen):
            assert_http_cases(await http_cases("HTTP2", port), seen, port)
            assert set(seen.http_versions) == {"2"}

    run(scenario())


def test_http2_over_tls_by_alpn(pki):
    async def scenario():
        async with http2_server(pki) as (port, seen):
            assert_http_cases(await http_cases("HTTP2", port, tls=True), seen, port)
            assert set(seen.http_versions) == {"2"}

    run(scenario())


def test_tcp_connect_request_and_expected_reply():
    spec = ProbeSpec("TCP", port=None, request="PING\n", response="PONG", timeout=TIMEOUT)

    async def scenario():
        async with tcp_server(b"PONG\n") as (right, seen), tcp_server(b"NOPE\n") as (wrong, _), \
                tcp_server(None) as (hanging, _):
            assert (await probe_one(spec, right)).ok
            assert seen.connections == 1
            # A bare connect is healthy with no reply expected.
            assert (await probe_one(ProbeSpec("TCP", port=None, timeout=TIMEOUT), hanging)).ok
            wrong_reply = await probe_one(spec, wrong)
            assert not wrong_reply.ok and wrong_reply.error == "the reply does not contain 'PONG' (got b'NOPE\\n')"
            hang = await probe_one(spec, hanging)
            assert not hang.ok and hang.error == f"no answer within {TIMEOUT:g} s"
            closed = await probe_one(spec, closed_port())
            assert not closed.ok and closed.error.startswith("connection refused")

    run(scenario())


def test_grpc_health_serving_not_serving_hanging_and_closed():
    def spec(service):
        return ProbeSpec("GRPC", port=None, grpc_service_name=service, timeout=TIMEOUT)

    async def scenario():
        async with grpc_health_server() as (port, seen), tcp_server(None) as (silent, _):
            serving = await probe_one(spec("svc"), port)
            assert (serving.ok, serving.error, serving.address) == (True, "", f"127.0.0.1:{port}")
            down = await probe_one(spec("down"), port)
            assert not down.ok and down.error == "gRPC health status NOT_SERVING"
            unknown = await probe_one(spec("nobody"), port)
            assert not unknown.ok and unknown.error.startswith("gRPC NOT_FOUND")
            hang = await probe_one(spec("svc"), silent)
            assert not hang.ok and ("no answer within" in hang.error or "DEADLINE_EXCEEDED" in hang.error)
            closed = await probe_one(spec("svc"), closed_port())
            assert not closed.ok and closed.error.startswith("gRPC UNAVAILABLE")
            assert seen.user_agents[0].startswith("Interlock-HealthCheck/1.0 (region=eu-test)")

    run(scenario())


def test_a_host_name_is_probed_at_its_checked_address_with_the_name_as_host():
    async def scenario():
        async with http_server() as (port, seen):
            result = await probe_one(http_spec("HTTP", "/healthy"), port, address="localhost")
            assert result.ok and result.address == f"127.0.0.1:{port}"
            assert seen.hosts == ["localhost"]

    run(scenario())


def test_an_ipv6_endpoint_is_probed_and_reported_in_brackets():
    async def scenario():
        server = await asyncio.start_server(lambda _reader, writer: writer.close(), "::1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            result = await probe_one(ProbeSpec("TCP", port=None, timeout=TIMEOUT), port, address="::1")
            assert result.ok and result.address == f"[::1]:{port}"
        finally:
            server.close()

    run(scenario())


def test_a_long_lived_prober_keeps_http_connections_alive_between_rounds():
    async def scenario():
        async with http_server() as (port, seen):
            async with Prober() as prober:
                targets = [ProbeTarget("e1", "127.0.0.1", port)]
                for _ in range(3):
                    [result] = await prober.probe_all(http_spec("HTTP", "/healthy"), targets, region=REGION,
                                                      deny=LOOPBACK_ALLOWED)
                    assert result.ok
            assert len(seen.peers) == 3 and len(set(seen.peers)) == 1

    run(scenario())


def test_thousands_of_targets_one_result_each_in_order_never_raising():
    async def scenario():
        async with http_server() as (port, seen):
            targets = [ProbeTarget(i, "127.0.0.1", port) for i in range(2000)]
            targets += [ProbeTarget("closed", "127.0.0.1", closed_port()), ProbeTarget("bad", "bad name!", 80),
                        ProbeTarget("unspecified", "0.0.0.0", port)]
            # The server shares this event loop: a timeout of its own, longer than the batch takes.
            spec = ProbeSpec("HTTP", port=None, request_path="/healthy", timeout=10)
            results = await probe_all(spec, targets, region=REGION,
                                      deny=LOOPBACK_ALLOWED, concurrency=200)
            assert [result.key for result in results] == [target.key for target in targets]
            assert all(result.ok for result in results[:2000])
            assert [result.ok for result in results[2000:]] == [False, False, False]
            assert results[-1].error == "refused: 0.0.0.0 is in a denied network (0.0.0.0/8)"
            assert len(seen.user_agents) == 2000

    run(scenario())


# The deny list.

ALL_PROTOCOLS = ["HTTP", "HTTPS", "HTTP2", "TCP", "GRPC"]


@pytest.mark.parametrize("protocol", ALL_PROTOCOLS)
def test_a_denied_destination_is_never_connected_to(protocol):
    """Loopback is not allowed here: a listener on it sees no connection, by IP or by name."""
    deny = DenyList.of(["169.254.0.0/16"], allow_loopback=False)
    spec = ProbeSpec(protocol, port=None, timeout=TIMEOUT)

    async def scenario():
        async with tcp_server(b"HTTP/1.1 200 OK\r\n\r\n") as (port, seen):
            for address in ("127.0.0.1", "localhost", "::ffff:127.0.0.1", "::1"):
                result = await probe_one(spec, port, address=address, deny=deny)
                assert not result.ok and result.error.startswith("refused: "), result
                assert result.address == "" and result.latency_ms is None
            await asyncio.sleep(0.1)
            assert seen.connections == 0

    run(scenario())


@pytest.mark.parametrize("address, network", [
    ("169.254.169.254", "169.254.0.0/16"),
    ("::ffff:169.254.169.254", "169.254.0.0/16"),
    ("fe80::1", "fe80::/10"),
    ("0.0.0.0", "0.0.0.0/8"),
    ("::", "::/128"),
    ("100.100.100.200", "100.100.100.200/32"),
])
def test_metadata_link_local_and_unspecified_addresses_are_refused_with_the_network_named(settings, address, network):
    # Checked at the gate every probe passes before it connects (resolve), not by
    # probing: were the check broken, a probe would send packets off this machine.
    # That nothing is sent to a refused address is the loopback test above.
    settings.PROBE_ALLOW_LOOPBACK = True
    with pytest.raises(Refused) as refused:
        run(resolve(address, 80, DenyList.from_settings()))
    assert str(refused.value) == f"refused: {address} is in a denied network ({network})"


def test_the_operators_networks_are_denied_and_loopback_follows_the_setting(settings):
    settings.PROBE_DENY_NETWORKS = [*settings.PROBE_DENY_NETWORKS, "10.0.0.0/8"]
    settings.PROBE_ALLOW_LOOPBACK = False
    deny = DenyList.from_settings()
    import ipaddress

    assert str(deny.network_of(ipaddress.ip_address("10.1.2.3"))) == "10.0.0.0/8"
    assert str(deny.network_of(ipaddress.ip_address("127.0.0.53"))) == "127.0.0.0/8"
    assert str(deny.network_of(ipaddress.ip_address("::ffff:10.9.9.9"))) == "10.0.0.0/8"
    assert deny.network_of(ipaddress.ip_address("192.0.2.10")) is None
    settings.PROBE_ALLOW_LOOPBACK = True
    assert DenyList.from_settings().network_of(ipaddress.ip_address("127.0.0.1")) is None


def test_a_name_resolving_only_to_denied_addresses_is_refused_naming_them():
    deny = DenyList.of([], allow_loopback=False)
    result = run(probe_one(ProbeSpec("TCP", port=None, timeout=TIMEOUT), closed_port(), address="localhost", deny=deny))
    assert result.error.startswith("refused: localhost resolves only to addresses in denied networks: 127.0.0.1 (127.0.0.0/8)")


def test_user_agent_names_interlock_and_the_region():
    assert user_agent("us-east1") == "Interlock-HealthCheck/1.0 (region=us-east1)"


def test_spec_of_a_health_check_row():
    from service.mesh.models import HealthCheck

    check = HealthCheck(name="hc", timeout_sec=3, https_health_check={
        "port": 8443, "request_path": "/healthz", "host": "shop.example", "response": "ok"})
    assert spec_of(check) == ProbeSpec("HTTPS", port=8443, host="shop.example", request_path="/healthz",
                                       response="ok", timeout=3.0)
    grpc_check = HealthCheck(name="g", timeout_sec=5, grpc_health_check={"grpc_service_name": "svc"})
    assert spec_of(grpc_check) == ProbeSpec("GRPC", port=None, grpc_service_name="svc", timeout=5.0)
    with pytest.raises(ValueError, match="sets none of"):
        spec_of(HealthCheck(name="none"))


def test_spec_of_a_block_left_at_its_defaults():
    """{} is a block with every default (the API stores it so): a TCP connect,
    or grpc.health.v1 for the whole server, on each endpoint's serving port."""
    from service.mesh.models import HealthCheck

    assert spec_of(HealthCheck(name="g", timeout_sec=1, grpc_health_check={})) == \
        ProbeSpec("GRPC", port=None, timeout=1.0)
    assert spec_of(HealthCheck(name="t", timeout_sec=1, tcp_health_check={})) == ProbeSpec("TCP", port=None, timeout=1.0)
