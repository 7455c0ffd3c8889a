"""Each protocol as a real `interlock worker --region r1` process probes it,
on real Redis and Postgres: one round of a health check whose endpoints are
real loopback servers that answer right, answer wrongly, hang past the
timeout, and a closed port; each endpoint's RegionProbe says which, and the
round is done within the timeout."""
import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass

import pytest
from grpc_health.v1 import health_pb2

from service.health.models import Health, RegionProbe
from service.mesh.models import Endpoint, HealthCheck
from tests.client.conftest import make_pki
from tests.e2e.support import create
from tests.workers.probe_servers import (
    Seen,
    closed_port,
    grpc_health_server,
    http2_server,
    http_server,
    server_tls,
    tcp_server,
)
from tests.workers.processes import WAIT_SEC, send_round

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TIMEOUT_SEC = 1
# What a round may take past its timeout: the task's trip through Redis, the
# probes' event loop and recording the results in Postgres.
MARGIN_SEC = 2.0  # measured 0.3-0.5 s on an idle machine; a loaded one needs room
USER_AGENT = "Interlock-HealthCheck/1.0 (region=r1)"


class LoopThread:
    """An event loop in a thread of its own, serving the loopback servers
    (asyncio context managers) while the test runs in the main thread."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers = contextlib.AsyncExitStack()

    def run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(WAIT_SEC)

    def serve(self, server) -> tuple[int, Seen]:
        return self.run(self.servers.enter_async_context(server))

    def close(self):
        self.run(self.servers.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT_SEC)
        self.loop.close()


@pytest.fixture
def loop():
    thread = LoopThread()
    yield thread
    thread.close()


@dataclass
class Case:
    """A protocol's health check block, and per endpoint (by what it does)
    its server and what its RegionProbe's error says ("" for the right one)."""
    block: str
    fields: dict
    servers: dict  # what the endpoint does -> an async context manager yielding (port, seen)
    errors: dict  # what the endpoint does -> a fragment of its error


def http_case(block, server, **fields):
    """HTTP/1.1, over TLS, or HTTP/2: the same routes (tests/workers/probe_servers.py)."""
    return Case(block, {"request_path": "/healthz", "response": "all good", **fields}, {
        "right": server(route="/healthy"),
        "wrong status": server(route="/status"),
        "wrong body": server(route="/body"),
        "hang": server(route="/hang"),
    }, {
        "right": "",
        "wrong status": "HTTP 503 (a healthy endpoint answers 200)",
        "wrong body": "do not contain 'all good'",
    })


def case_of(protocol: str, tmp_path) -> Case:
    if protocol == "HTTP":
        return http_case("http_health_check", http_server)
    if protocol == "HTTPS":
        pki = make_pki(tmp_path)
        return http_case("https_health_check", lambda route: http_server(server_tls(pki, Seen()), route=route))
    if protocol == "HTTP2":
        return http_case("http2_health_check", http2_server)
    if protocol == "TCP":
        return Case("tcp_health_check", {"request": "PING\n", "response": "PONG"}, {
            "right": tcp_server(b"PONG\n"), "wrong reply": tcp_server(b"NOPE\n"), "hang": tcp_server(None),
        }, {"right": "", "wrong reply": "the reply does not contain 'PONG' (got b'NOPE\\n')"})
    assert protocol == "GRPC"
    return Case("grpc_health_check", {"grpc_service_name": "svc"}, {
        "right": grpc_health_server(),
        "wrong status": grpc_health_server(svc_status=health_pb2.HealthCheckResponse.NOT_SERVING),
        "hang": tcp_server(None),  # takes the connection, never speaks HTTP/2
    }, {"right": "", "wrong status": "gRPC health status NOT_SERVING"})


def checked_endpoints(api, tenant, case: Case, ports: dict) -> tuple[HealthCheck, dict]:
    """A health check of the case's protocol with no port (each endpoint's own
    is probed) on a service whose endpoints are at ``ports``."""
    create(api, "meshes", {"name": "m1"})
    create(api, "health-checks", {"name": "check", "check_interval_sec": 1, "timeout_sec": TIMEOUT_SEC,
                                  "source_regions": ["r1"], case.block: case.fields})
    create(api, "endpoint-groups", {"name": "group", "locality": {"cloud": "aws", "region": "us-east-1"},
                                    "endpoints": [{"address": "127.0.0.1", "port": port} for port in ports.values()]})
    create(api, "backend-services", {"name": "web", "mesh": "m1", "health_checks": ["check"],
                                     "backends": [{"endpoint_group": "group"}]})
    by_port = {endpoint.port: endpoint for endpoint in Endpoint.objects.filter(tenant=tenant)}
    return HealthCheck.objects.get(tenant=tenant, name="check"), {does: by_port[port] for does, port in ports.items()}


def wait_for_round(check, endpoints: dict, round_at, sent: float, worker) -> tuple[dict, dict]:
    """Each endpoint's RegionProbe of this round, and how long after ``sent``
    (time.monotonic()) the test saw it."""
    seen_after, rows = {}, {}
    deadline = time.monotonic() + WAIT_SEC
    while len(rows) < len(endpoints):
        assert worker.popen.poll() is None, f"the worker exited:\n{worker.text()[-3000:]}"
        assert time.monotonic() < deadline, f"not within {WAIT_SEC} s: the round's rows; got {list(rows)}"
        for row in RegionProbe.objects.filter(health_check=check, region="r1", probed_at__gte=round_at):
            for does, endpoint in endpoints.items():
                if row.endpoint_id == endpoint.pk and does not in rows:
                    rows[does], seen_after[does] = row, time.monotonic() - sent
        time.sleep(0.02)
    return rows, seen_after


@pytest.mark.parametrize("protocol", ["HTTP", "HTTPS", "HTTP2", "TCP", "GRPC"])
def test_one_round_of_a_worker_tells_right_wrong_hanging_and_refused_endpoints_apart(
        protocol, api, tenant, interlock, loop, tmp_path):
    case = case_of(protocol, tmp_path)
    served = {does: loop.serve(server) for does, server in case.servers.items()}
    ports = {does: port for does, (port, _seen) in served.items()} | {"refused": closed_port()}
    check, endpoints = checked_endpoints(api, tenant, case, ports)
    worker = interlock.worker("r1")

    sent = time.monotonic()
    round_at = send_round(check, "r1", list(endpoints.values()))
    rows, seen_after = wait_for_round(check, endpoints, round_at, sent, worker)

    # The whole round (one batch, probed concurrently) is done within the timeout, hang included.
    assert max(seen_after.values()) <= TIMEOUT_SEC + MARGIN_SEC, seen_after
    right = rows.pop("right")
    assert (right.state, right.successes, right.failures, right.error) == (Health.HEALTHY, 1, 0, "")
    assert right.address == f"127.0.0.1:{ports['right']}" and right.latency_ms > 0
    hang = rows.pop("hang")
    assert hang.error == f"no answer within {TIMEOUT_SEC} s" and hang.latency_ms is None
    refused = rows.pop("refused")
    assert "refused" in refused.error.lower(), refused.error
    for does, row in rows.items():  # the wrong answers
        assert case.errors[does] in row.error, (does, row.error)
    for does, row in {**rows, "hang": hang, "refused": refused}.items():
        assert row.state != Health.HEALTHY and (row.successes, row.failures) == (0, 1), (does, row.state)
    if protocol != "TCP":  # a TCP probe sends the check's bytes only
        assert served["right"][1].user_agents, "the right endpoint's server saw no request"
        user_agents = {agent for _port, seen in served.values() for agent in seen.user_agents}
        # gRPC's own user agent follows Interlock's.
        named = {agent.split(" grpc-")[0] for agent in user_agents} if protocol == "GRPC" else user_agents
        assert named == {USER_AGENT}, user_agents


def test_a_worker_keeps_its_http_connection_to_an_endpoint_from_one_round_to_the_next(api, tenant, interlock, loop):
    port, seen = loop.serve(http_server(route="/healthy"))
    check, endpoints = checked_endpoints(api, tenant, Case("http_health_check", {"request_path": "/healthz"}, {}, {}),
                                         {"right": port})
    worker = interlock.worker("r1")
    for _ in range(3):
        sent = time.monotonic()
        round_at = send_round(check, "r1", list(endpoints.values()))
        wait_for_round(check, endpoints, round_at, sent, worker)
    assert len(seen.peers) == 3 and len(set(seen.peers)) == 1, seen.peers  # one connection, three probes
