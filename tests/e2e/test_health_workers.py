"""Health checking end to end, as an operator runs it: `interlock worker
--region R` and `interlock beat` processes probe real backends (each in a
process of its own, killed with SIGKILL and started again on the same port),
their verdicts reach a real Envoy and a real proxyless gRPC client through a
real xDS replica, and the API shows what each region found.

The health checks probe every second (check_interval_sec 1) with thresholds
of 2, so a killed backend must be out of traffic within 1 x 2 + 2 s, and
back within 1 x 2 + 2 s of listening again."""
import datetime
import socketserver
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from client.bootstrap import BootstrapOptions, grpc_bootstrap
from tests.e2e.backends import BackendProcess
from tests.e2e.support import create, send, to, wait_for
from tests.service.test_cli import free_port
from tests.workers.processes import Interlock, eventually
from workers.probing import user_agent

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

INTERVAL_SEC, HEALTHY_THRESHOLD, UNHEALTHY_THRESHOLD = 1, 2, 2
# The bounds: out of traffic, and back in it, this long after the fact.
LEFT_OUT_WITHIN = INTERVAL_SEC * UNHEALTHY_THRESHOLD + 2
BACK_WITHIN = INTERVAL_SEC * HEALTHY_THRESHOLD + 2
# How long traffic is watched for failures after the deadline.
WATCH_SEC = 3


@pytest.fixture
def workers(settings, tmp_path):
    """Starts `interlock worker|beat` processes; all are stopped at the end."""
    processes = Interlock(settings, tmp_path, HEALTH_REGIONS="r1", PROBE_DENY_NETWORKS="127.0.0.3/32")
    try:
        yield processes
    finally:
        processes.stop_all()
        for process in processes.started:  # shown when the test failed
            print(f"--- {process.log.name} ---\n{process.text()[-3000:]}")


@pytest.fixture
def backends(tmp_path):
    """backends(kind, name) -> a started BackendProcess ("http" or "grpc") on a free port; all killed at the end."""
    started = []

    def start(kind: str, name: str) -> BackendProcess:
        started.append(BackendProcess(kind, name, free_port(), tmp_path / f"backend-{name}.log"))
        return started[-1].start()

    try:
        yield start
    finally:
        for backend in started:
            backend.kill()


def health_checked_service(api, mesh: str, name: str, members, protocol: str, block: dict, regions=("r1",)):
    """A backend service `name` of one endpoint group holding `members`
    (anything with a host and a port), with a health check of its own."""
    create(api, "health-checks", {"name": name, "check_interval_sec": INTERVAL_SEC, "timeout_sec": 1,
                                  "healthy_threshold": HEALTHY_THRESHOLD,
                                  "unhealthy_threshold": UNHEALTHY_THRESHOLD,
                                  "source_regions": list(regions), block_name(protocol): block})
    create(api, "endpoint-groups", {"name": name, "locality": {"cloud": "aws", "region": "us-east-1",
                                                               "zone": "us-east-1a"},
                                    "endpoints": [{"address": m.host, "port": m.port} for m in members]})
    create(api, "backend-services", {"name": name, "mesh": mesh, "protocol": protocol, "health_checks": [name],
                                     "backends": [{"endpoint_group": name}]})


def block_name(protocol: str) -> str:
    return {"HTTP": "http_health_check", "GRPC": "grpc_health_check"}[protocol]


def service_health(api, name: str) -> dict:
    response = api.get(f"/api/v1/backend-services/{name}/health")
    assert response.status_code == 200, response.json()
    return response.json()


def endpoints_of(health: dict) -> dict[tuple[str, int], dict]:
    """The endpoints of a service's health, by (address, port)."""
    return {(e["address"], e["port"]): e for backend in health["backends"] for e in backend["endpoints"]}


def verdicts(api, name: str) -> dict[int, str]:
    """The verdict of each endpoint of service `name`, by port."""
    return {port: e["health"] for (_, port), e in endpoints_of(service_health(api, name)).items()}


def health_flags(proxy, port: int) -> str | None:
    """Envoy's health flags for its host 127.0.0.1:port (admin /clusters):
    "healthy", or "/failed_eds_health" while EDS says UNHEALTHY; None if it
    has no such host. (HEALTHY and UNKNOWN in EDS are both "healthy" here:
    Envoy sends traffic to both.)"""
    status, body = proxy.admin_get("/clusters")
    assert status == 200, body
    for line in body.splitlines():
        if f"::127.0.0.1:{port}::health_flags::" in line:
            return line.rsplit("::", 1)[1]
    return None


class Traffic:
    """Requests sent one after another in a thread while `with` lasts: each
    outcome (a backend's name, or "error ...") with the time it was sent."""

    PAUSE_SEC = 0.01

    def __init__(self, request):
        self.request = request
        self.outcomes: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            sent = time.monotonic()
            try:
                outcome = self.request()
            except Exception as error:  # any failure of a request counts as one, with its reason
                outcome = f"error {error!r}"
            self.outcomes.append((sent, outcome))
            time.sleep(self.PAUSE_SEC)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=15)

    def since(self, moment: float) -> list[str]:
        return [outcome for sent, outcome in list(self.outcomes) if sent >= moment]

    def first_reaching(self, name: str, since: float) -> float | None:
        return next((sent for sent, outcome in list(self.outcomes) if sent >= since and outcome == name), None)


def through_envoy(port: int, host: str):
    def request() -> str:
        answer = send(port, host)
        return answer.backend if answer.status == 200 else f"error {answer!r}"
    return request


def assert_killed_and_revived(killed: BackendProcess, survivor: BackendProcess, traffic: Traffic, left_out):
    """Kills `killed`: within LEFT_OUT_WITHIN the proxy leaves it out (left_out()
    turns true) and from then on every request succeeds, at `survivor`; started
    again, it takes traffic within BACK_WITHIN of listening, and no request fails."""
    killed_at = time.monotonic()
    killed.kill()
    wait_for(left_out, timeout=LEFT_OUT_WITHIN, what=f"{killed.name} left out of traffic")
    left_out_after = time.monotonic() - killed_at
    deadline = killed_at + LEFT_OUT_WITHIN
    time.sleep(max(0.0, deadline - time.monotonic()) + WATCH_SEC)
    after_deadline = traffic.since(deadline)
    assert after_deadline and set(after_deadline) == {survivor.name}, after_deadline
    killed.start()
    listening_at = time.monotonic()
    wait_for(lambda: traffic.first_reaching(killed.name, listening_at), timeout=BACK_WITHIN + 1,
             what=f"{killed.name} taking traffic again")
    back_at = traffic.first_reaching(killed.name, listening_at)
    back_after = back_at - listening_at
    time.sleep(1)
    failures = [outcome for outcome in traffic.since(deadline) if outcome.startswith("error")]
    assert failures == [], failures
    before_deadline = [outcome for outcome in traffic.since(killed_at) if outcome.startswith("error")]
    assert back_after <= BACK_WITHIN, back_after
    assert set(traffic.since(back_at)) == {killed.name, survivor.name}  # both serve again
    print(f"{killed.name}: left out {left_out_after:.2f} s after SIGKILL (bound {LEFT_OUT_WITHIN} s), "
          f"back {back_after:.2f} s after listening again (bound {BACK_WITHIN} s); "
          f"{len(traffic.outcomes)} requests, {len(before_deadline)} failed before the first bound, none after")


def start_probing(workers, *regions):
    for region in regions:
        workers.worker(region)
    workers("beat", name="beat")


def test_envoy_stops_sending_to_a_killed_backend_and_takes_it_back(api, mesh, token, replica, start_envoy, backends,
                                                                   workers):
    one, two = backends("http", "one"), backends("http", "two")
    health_checked_service(api, mesh.name, "pair", [one, two], "HTTP", {"request_path": "/healthz"})
    create(api, "http-routes", {"name": "pair", "meshes": [mesh.name], "hostnames": ["pair.test"],
                                "rules": [{"action": to("pair")}]})
    start_probing(workers, "r1")
    proxy = start_envoy(replica, token)
    eventually(lambda: verdicts(api, "pair") == {one.port: "HEALTHY", two.port: "HEALTHY"}, "both HEALTHY")
    wait_for(lambda: health_flags(proxy, one.port) == health_flags(proxy, two.port) == "healthy", timeout=20,
             what="Envoy holding both endpoints as healthy")
    with Traffic(through_envoy(mesh.port, "pair.test")) as traffic:
        wait_for(lambda: {"one", "two"} <= set(traffic.since(0)), timeout=5, what="both backends serving")
        assert_killed_and_revived(one, two, traffic, lambda: health_flags(proxy, one.port) == "/failed_eds_health")
    assert verdicts(api, "pair") == {one.port: "HEALTHY", two.port: "HEALTHY"}


def grpc_client_of(api, mesh, token, replica, grpc_client, hostname: str):
    options = BootstrapOptions(server=f"127.0.0.1:{replica.port}", tenant="acme", mesh=mesh.name,
                               node=f"{hostname}-client", token=token, cloud="aws", region="us-east-1",
                               zone="us-east-1a")
    return grpc_client(f"xds:///{hostname}", grpc_bootstrap(options))


def test_grpc_client_stops_calling_a_killed_backend_and_takes_it_back(api, mesh, token, replica, grpc_client,
                                                                      backends, workers):
    one, two = backends("grpc", "one"), backends("grpc", "two")
    health_checked_service(api, mesh.name, "pair", [one, two], "GRPC", {})  # grpc.health.v1 on the serving port
    create(api, "grpc-routes", {"name": "pair", "meshes": [mesh.name], "hostnames": ["pair.test"],
                                "rules": [{"action": to("pair")}]})
    start_probing(workers, "r1")
    eventually(lambda: verdicts(api, "pair") == {one.port: "HEALTHY", two.port: "HEALTHY"}, "both HEALTHY")
    client = grpc_client_of(api, mesh, token, replica, grpc_client, "pair.test")
    with Traffic(client.call) as traffic:
        wait_for(lambda: {"one", "two"} <= set(traffic.since(0)), timeout=20, what="both backends called")
        assert_killed_and_revived(one, two, traffic, lambda: verdicts(api, "pair")[one.port] == "UNHEALTHY")


def test_envoy_and_grpc_client_keep_every_endpoint_when_all_fail(api, mesh, token, replica, start_envoy, grpc_client,
                                                                  backends, workers):
    """Fail open: every endpoint of a service UNHEALTHY -> sent as UNKNOWN, and the API says so."""
    web = [backends("http", "web-1"), backends("http", "web-2")]
    rpc = [backends("grpc", "rpc-1"), backends("grpc", "rpc-2")]
    health_checked_service(api, mesh.name, "web", web, "HTTP", {})
    health_checked_service(api, mesh.name, "rpc", rpc, "GRPC", {})
    create(api, "http-routes", {"name": "web", "meshes": [mesh.name], "hostnames": ["web.test"],
                                "rules": [{"action": to("web")}]})
    create(api, "grpc-routes", {"name": "rpc", "meshes": [mesh.name], "hostnames": ["rpc.test"],
                                "rules": [{"action": to("rpc")}]})
    start_probing(workers, "r1")
    proxy = start_envoy(replica, token)
    client = grpc_client_of(api, mesh, token, replica, grpc_client, "rpc.test")
    for name, members in (("web", web), ("rpc", rpc)):
        eventually(lambda: verdicts(api, name) == {b.port: "HEALTHY" for b in members}, f"{name} HEALTHY")
    wait_for(lambda: all(health_flags(proxy, b.port) == "healthy" for b in web), timeout=20,
             what="Envoy holding web's endpoints")
    assert wait_for(lambda: client.call() in ("rpc-1", "rpc-2"), timeout=20, what="the gRPC client calling rpc")

    for backend in web + rpc:
        backend.kill()
    for name, members in (("web", web), ("rpc", rpc)):
        wait_for(lambda: verdicts(api, name) == {b.port: "UNHEALTHY" for b in members}, timeout=LEFT_OUT_WITHIN + 2,
                 what=f"every endpoint of {name} UNHEALTHY")
        assert service_health(api, name)["failing_open"] is True
    # Envoy holds both endpoints without /failed_eds_health (they came as
    # UNKNOWN): it tries them, and fails to connect, rather than having no host.
    time.sleep(1)  # the notice has reached Envoy
    assert [health_flags(proxy, b.port) for b in web] == ["healthy", "healthy"]
    answer = send(mesh.port, "web.test")
    assert answer.status == 503 and b"no healthy upstream" not in answer.body, answer
    # The gRPC client has the endpoints too: it fails connecting to them.
    failure = client.call()
    assert failure.startswith("error UNAVAILABLE") and any(str(b.port) in failure for b in rpc), failure
    # One of each comes back: traffic reaches it.
    web[0].start()
    rpc[0].start()
    wait_for(lambda: send(mesh.port, "web.test").backend == "web-1", timeout=BACK_WITHIN, what="web-1 back")
    wait_for(lambda: client.call() == "rpc-1", timeout=BACK_WITHIN, what="rpc-1 back")
    wait_for(lambda: not service_health(api, "web")["failing_open"], timeout=BACK_WITHIN, what="web not failing open")


class RegionalHealth:
    """An HTTP endpoint in a thread that fails (503) the probes of some regions,
    telling them by their User-Agent, and answers every other request 200;
    it records which regions probed it."""

    def __init__(self, failing_regions: set[str]):
        self.failing = {user_agent(region) for region in failing_regions}
        self.agents: set[str] = set()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                agent = self.headers.get("User-Agent", "")
                endpoint.agents.add(agent)
                self.send_response(503 if agent in endpoint.failing else 200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host, self.port = self.server.server_address
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def regional():
    """regional(failing_regions) -> a running RegionalHealth; all stopped at the end."""
    started = []
    try:
        yield lambda failing: started.append(RegionalHealth(failing)) or started[-1]
    finally:
        for endpoint in started:
            endpoint.stop()


def regions_of(api, name: str, port: int) -> dict[str, dict]:
    endpoint = endpoints_of(service_health(api, name))[("127.0.0.1", port)]
    return {region["region"]: region for region in endpoint["regions"]}


def test_one_region_failing_alone_or_stopping_changes_no_verdict(api, mesh, workers, regional):
    minority = regional({"r3"})  # fails the probes of one region of three
    majority = regional({"r2", "r3"})  # fails those of two
    health_checked_service(api, mesh.name, "web", [minority, majority], "HTTP", {}, regions=("r1", "r2", "r3"))
    # Two worker processes for r1, the region that will stop.
    workers.worker("r1", name="worker-r1-a"), workers.worker("r1", name="worker-r1-b")
    start_probing(workers, "r2", "r3")

    def settled():
        minority_regions, majority_regions = regions_of(api, "web", minority.port), regions_of(api, "web", majority.port)
        return (verdicts(api, "web") == {minority.port: "HEALTHY", majority.port: "UNHEALTHY"}
                and minority_regions.get("r3", {}).get("state") == "UNHEALTHY"
                and {r: s["state"] for r, s in majority_regions.items()} == {
                    "r1": "HEALTHY", "r2": "UNHEALTHY", "r3": "UNHEALTHY"})

    eventually(settled, "the minority endpoint HEALTHY, the majority one UNHEALTHY", timeout=15)
    assert minority.agents >= {user_agent(r) for r in ("r1", "r2", "r3")}
    # The failing region is visible in the API: its state and its error.
    shown = regions_of(api, "web", minority.port)
    assert {r: s["state"] for r, s in shown.items()} == {"r1": "HEALTHY", "r2": "HEALTHY", "r3": "UNHEALTHY"}
    assert shown["r3"]["error"] == "HTTP 503 (a healthy endpoint answers 200)"
    assert shown["r1"]["error"] == shown["r2"]["error"] == ""
    before = endpoints_of(service_health(api, "web"))

    # Every worker of r1 stops: r1 goes stale (3 intervals + the timeout), and
    # the two fresh regions split evenly on the minority endpoint: it stays HEALTHY.
    for process in workers.started[:2]:
        process.stop()
    stopped_at = timezone.now()
    stale_by = time.monotonic() + 3 * INTERVAL_SEC + 1 + 2
    while time.monotonic() < stale_by:
        now = endpoints_of(service_health(api, "web"))
        assert {k: (e["health"], e["changed_at"]) for k, e in now.items()} == \
            {k: (e["health"], e["changed_at"]) for k, e in before.items()}
        time.sleep(0.2)
    shown = regions_of(api, "web", minority.port)
    r1_probed = datetime.datetime.fromisoformat(shown["r1"]["probed_at"].replace("Z", "+00:00"))
    assert r1_probed < stopped_at  # r1 stopped probing: stale now
    assert {shown["r2"]["state"], shown["r3"]["state"]} == {"HEALTHY", "UNHEALTHY"}
    for region in ("r2", "r3"):  # still probing
        assert datetime.datetime.fromisoformat(shown[region]["probed_at"].replace("Z", "+00:00")) > stopped_at


@dataclass(frozen=True)
class Address:
    host: str
    port: int


class CountingListener:
    """A TCP listener in a thread that counts the connections it accepts."""

    def __init__(self, host: str):
        self.connections = 0
        listener = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                listener.connections += 1

        self.server = socketserver.ThreadingTCPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.host, self.port = self.server.server_address
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def operator_denied_listener():
    """A listener on 127.0.0.3, which the workers here deny (PROBE_DENY_NETWORKS=127.0.0.3/32)."""
    listener = CountingListener("127.0.0.3")
    try:
        yield listener
    finally:
        listener.stop()


def test_a_probe_aimed_at_a_denied_network_is_never_sent(api, mesh, workers, regional, operator_denied_listener):
    answering = regional(set())
    metadata = Address("169.254.169.254", 80)  # a cloud metadata service's
    health_checked_service(api, mesh.name, "web", [answering, metadata, operator_denied_listener], "HTTP", {},
                        regions=("r1",))
    start_probing(workers, "r1")

    def shown() -> dict[tuple[str, int], dict]:
        return endpoints_of(service_health(api, "web"))

    eventually(lambda: {port: e["health"] for (_, port), e in shown().items()} == {
        answering.port: "HEALTHY", 80: "UNHEALTHY", operator_denied_listener.port: "UNHEALTHY"},
        "the answering endpoint HEALTHY, the denied ones UNHEALTHY")
    endpoints = shown()
    (r1_metadata,) = endpoints[("169.254.169.254", 80)]["regions"]
    assert r1_metadata["region"] == "r1" and r1_metadata["state"] == "UNHEALTHY"
    assert r1_metadata["error"] == "refused: 169.254.169.254 is in a denied network (169.254.0.0/16)"
    assert r1_metadata["latency_ms"] is None
    (r1_operator,) = endpoints[("127.0.0.3", operator_denied_listener.port)]["regions"]
    assert r1_operator["error"] == "refused: 127.0.0.3 is in a denied network (127.0.0.3/32)"
    # Refused before any packet: the listener at the denied address never saw a connection.
    assert operator_denied_listener.connections == 0
    assert service_health(api, "web")["failing_open"] is False
