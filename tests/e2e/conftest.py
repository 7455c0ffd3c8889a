"""Fixtures of the end-to-end tests: an xDS replica (its own event loop in a
thread, as in `interlock dev`), real Envoys started from the bootstrap the
client generates (admin on port 0), real loopback backends, a mesh and a node
token made through the API. Everything started is stopped, even on failure."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from client import envoy
from client.bootstrap import BootstrapOptions, envoy_bootstrap
from service.demo_backends import HttpBackend
from service.xds.replica import ReplicaConfig, ReplicaThread
from tests.e2e.backends import GrpcBackend
from tests.e2e.support import GrpcClientProcess, create
from tests.service.test_cli import free_port


class RunningReplica:
    """A replica thread that can be stopped early (a killed server) and is stopped once."""

    def __init__(self, port: int, name: str):
        self._thread = ReplicaThread(ReplicaConfig(port=port, replica=name))
        self.port = self._thread.start().port
        self.stopped = False

    def stop(self):
        if not self.stopped:
            self.stopped = True
            self._thread.stop()


@pytest.fixture
def start_replica():
    """start_replica(port=0, name="e2e") -> RunningReplica."""
    started = []

    def start(port: int = 0, name: str = "e2e") -> RunningReplica:
        started.append(RunningReplica(port, name))
        return started[-1]

    yield start
    for replica in started:
        replica.stop()


@pytest.fixture
def replica(start_replica):
    return start_replica()


@dataclass(frozen=True)
class Mesh:
    name: str
    port: int  # its interception port: where a sidecar Envoy listens


@pytest.fixture
def mesh(api):
    """The mesh `e2e` of tenant acme, on a free interception port."""
    port = free_port()
    create(api, "meshes", {"name": "e2e", "interception_port": port})
    return Mesh("e2e", port)


@pytest.fixture
def node_token():
    """node_token(api, mesh) -> a new node token of that client's tenant and mesh."""
    count = iter(range(1000))

    def issue(api, mesh: str) -> str:
        return create(api, "node-tokens", {"name": f"e2e-{next(count)}", "mesh": mesh})["token"]

    return issue


@pytest.fixture
def token(api, mesh, node_token):
    return node_token(api, mesh.name)


@pytest.fixture
def start_envoy(tmp_path):
    """start_envoy(replica, token, node="sidecar", tenant="acme", mesh="e2e", delta=False,
    cloud="aws", region="us-east-1") -> a running Envoy whose admin answers."""
    started = []

    def start(replica, token, node="sidecar", tenant="acme", mesh="e2e", delta=False, cloud="aws",
              region="us-east-1"):
        options = BootstrapOptions(server=f"127.0.0.1:{replica.port}", tenant=tenant, mesh=mesh, node=node,
                                   token=token, cloud=cloud, region=region, zone=f"{region}a", delta=delta,
                                   admin_port=0)
        path = tmp_path / f"{node}.json"
        path.write_text(json.dumps(envoy_bootstrap(options)))
        proxy = envoy.start(path)
        started.append(proxy)
        proxy.wait_admin()
        return proxy

    yield start
    for proxy in started:
        print(f"--- Envoy {proxy.pid} log ---\n{proxy.log()[-6000:]}")  # shown when the test failed
        proxy.stop()


@pytest.fixture
def http_backend():
    """http_backend(name) -> a running HttpBackend on 127.0.0.1."""
    with _Backends() as backends:
        yield lambda name: backends.start(HttpBackend(name))


@pytest.fixture
def grpc_backend():
    """grpc_backend(name) -> a running GrpcBackend on 127.0.0.1."""
    with _Backends() as backends:
        yield lambda name: backends.start(GrpcBackend(name))


class _Backends:
    def __init__(self):
        self._started = []

    def start(self, backend):
        backend.__enter__()
        self._started.append(backend)
        return backend

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for backend in self._started:
            backend.__exit__(None, None, None)


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
