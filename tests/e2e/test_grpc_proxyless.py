"""A real grpcio client dialling `xds:///<hostname>` with the bootstrap
`interlock-bootstrap grpc` writes reaches a gRPC backend through the
replica's configuration, and follows a route change on the same channel."""
import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from client.bootstrap import BootstrapOptions, grpc_bootstrap
from tests.e2e.support import create, endpoint_group, patch, proxy_status, service, timed, to, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


class GrpcClientProcess:
    """tests/e2e/grpc_client.py in a subprocess: call() makes one RPC and returns what it printed."""

    def __init__(self, target: str, bootstrap: dict, stderr_path: Path):
        env = {key: value for key, value in os.environ.items() if not key.startswith("GRPC_XDS_BOOTSTRAP")}
        env["GRPC_XDS_BOOTSTRAP_CONFIG"] = json.dumps(bootstrap)
        self.stderr_path = stderr_path
        with open(stderr_path, "w") as stderr:  # grpc's own log, for when something fails
            self.process = subprocess.Popen([sys.executable, "-m", "tests.e2e.grpc_client", target], cwd=ROOT,
                                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                                            text=True)
        self._lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def call(self, timeout=10.0) -> str:
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        line = self._lines.get(timeout=timeout)
        assert line is not None, f"the gRPC client exited with {self.process.wait()}: {self.stderr_path.read_text()}"
        return line

    def stop(self):
        self.process.kill()
        self.process.wait()


@pytest.fixture
def grpc_client(tmp_path):
    started = []

    def start(target, bootstrap):
        started.append(GrpcClientProcess(target, bootstrap, tmp_path / f"grpc-client-{len(started)}.log"))
        return started[-1]

    yield start
    for client in started:
        client.stop()
        print(f"--- gRPC client log ---\n{client.stderr_path.read_text()[-4000:]}")  # shown when the test failed


def test_grpc_client_reaches_the_backend_its_route_selects_and_follows_a_change(api, mesh, token, replica,
                                                                                grpc_backend, grpc_client):
    for name in ("one", "two"):
        create(api, "endpoint-groups", endpoint_group(name, grpc_backend(name)))
        create(api, "backend-services", service(name, mesh.name, name, protocol="GRPC"))
    match = {"method": {"grpc_service": "interlock.test.Echo", "grpc_method": "Who"}}
    create(api, "grpc-routes", {"name": "greeter", "meshes": [mesh.name], "hostnames": ["greeter.test"],
                                "rules": [{"matches": [match], "action": to("one")}]})
    options = BootstrapOptions(server=f"127.0.0.1:{replica.port}", tenant="acme", mesh=mesh.name,
                               node="greeter-client", token=token, cloud="aws", region="us-east-1",
                               zone="us-east-1a")
    client = grpc_client("xds:///greeter.test", grpc_bootstrap(options))

    assert wait_for(lambda: client.call() == "one", timeout=20, what="the first call reaching backend one")
    patch(api, "grpc-routes/greeter", {"rules": [{"matches": [match], "action": to("two")}]})
    elapsed = timed(lambda: client.call() == "two", timeout=5, what="the route change reaching the client")
    print(f"gRPC client followed the route change {elapsed * 1000:.0f} ms after the 2xx")
    assert all(client.call() == "two" for _ in range(10))


    def all_acked():
        status = proxy_status(api, "greeter-client", mesh.name)
        assert set(status) == {"Listener", "RouteConfiguration", "Cluster", "ClusterLoadAssignment"}, status
        return all(s["nack"] is None and s["version_acked"] == s["version_sent"] for s in status.values())

    wait_for(all_acked, timeout=5, what="the proxies API showing every type ACKed")


def test_grpc_client_reaches_a_backend_given_by_host_name(api, mesh, token, replica, grpc_backend, grpc_client):
    """gRPC refuses STRICT_DNS clusters and names in EDS: the replica resolves
    the name (localhost -> 127.0.0.1) and sends the address in EDS."""
    backend = grpc_backend("named")
    group = endpoint_group("named", backend)
    group["endpoints"] = [{"address": "localhost", "port": backend.port}]
    create(api, "endpoint-groups", group)
    create(api, "backend-services", service("named", mesh.name, "named", protocol="GRPC"))
    create(api, "grpc-routes", {"name": "by-name", "meshes": [mesh.name], "hostnames": ["named.test"],
                                "rules": [{"action": to("named")}]})
    options = BootstrapOptions(server=f"127.0.0.1:{replica.port}", tenant="acme", mesh=mesh.name,
                               node="named-client", token=token, cloud="aws", region="us-east-1", zone="us-east-1a")
    client = grpc_client("xds:///named.test", grpc_bootstrap(options))

    assert wait_for(lambda: client.call() == "named", timeout=20, what="the call reaching the backend by host name")

    def all_acked():
        status = proxy_status(api, "named-client", mesh.name)
        assert set(status) == {"Listener", "RouteConfiguration", "Cluster", "ClusterLoadAssignment"}, status
        return all(s["nack"] is None and s["version_acked"] == s["version_sent"] for s in status.values())

    wait_for(all_acked, timeout=5, what="every type ACKed, the cluster and its endpoints too")


def test_grpc_client_follows_endpoint_health_and_fails_open_when_all_are_unhealthy(
        api, mesh, token, replica, grpc_backend, grpc_client):
    """Verdicts arrive as endpoint-health notices (published here as the workers
    publish them): gRPC stops calling an UNHEALTHY endpoint, and calls them all
    again once every endpoint is UNHEALTHY (gRPC has no panic mode of its own)."""
    from service.notices import ChangeNotice, get_bus

    one, two = grpc_backend("one"), grpc_backend("two")
    group = endpoint_group("pair", one)
    group["endpoints"].append({"address": two.host, "port": two.port})
    create(api, "endpoint-groups", group)
    create(api, "backend-services", service("pair", mesh.name, "pair", protocol="GRPC"))
    create(api, "grpc-routes", {"name": "pair", "meshes": [mesh.name], "hostnames": ["pair.test"],
                                "rules": [{"action": to("pair")}]})
    options = BootstrapOptions(server=f"127.0.0.1:{replica.port}", tenant="acme", mesh=mesh.name,
                               node="pair-client", token=token, cloud="aws", region="us-east-1", zone="us-east-1a")
    client = grpc_client("xds:///pair.test", grpc_bootstrap(options))
    answers = set()
    assert wait_for(lambda: answers.add(client.call()) or answers == {"one", "two"}, timeout=20,
                    what="calls reaching both backends")

    def verdicts(first, second):
        get_bus().publish(ChangeNotice("acme", mesh.name, 1, ("endpoint-health",), (("backend-services", "pair"),),
                                       (("pair", "pair", one.host, one.port, first),
                                        ("pair", "pair", two.host, two.port, second))))

    verdicts("UNHEALTHY", "HEALTHY")
    elapsed = timed(lambda: all(client.call() == "two" for _ in range(10)), timeout=5,
                    what="the UNHEALTHY endpoint left out")
    print(f"gRPC client left the UNHEALTHY endpoint out {elapsed * 1000:.0f} ms after the notice")
    assert all(client.call() == "two" for _ in range(20))

    verdicts("UNHEALTHY", "UNHEALTHY")
    answers.clear()
    assert wait_for(lambda: answers.add(client.call()) or answers == {"one", "two"}, timeout=5,
                    what="both endpoints called again, failing open")
