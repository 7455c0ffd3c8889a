"""Faults of Postgres and Redis, against the processes an operator runs:
`interlock api` (gunicorn) and `interlock xds` as subprocesses, pointed at a
private Postgres and a private Redis that each test stops or freezes.

What must hold: the API answers 503 with its JSON error shape (never an HTML
500) when the database or Redis is away, within seconds, and liveness never
waits on them; a write that committed is answered as committed; a replica
starts and serves without Redis and catches up when Redis returns.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import psycopg
import pytest
import requests
from envoy.service.discovery.v3 import ads_pb2_grpc

from tests.private_engines import free_port
from tests.service.xds.conftest import Stream, node, sotw_request

pytestmark = pytest.mark.slow

WORKTREE = Path(__file__).resolve().parents[2]
CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
# What "within a few seconds" means here: the defaults of docs/operations.md
# (connect 3 s, statement 5 s, Redis 1 s) plus a margin for a loaded machine.
PROMPT_SEC = 10.0


class Stack:
    """The environment of the operator's processes, and the processes started in it."""

    def __init__(self, postgres, redis, logs: Path):
        self.env = {**os.environ, "DATABASE_URL": postgres.url, "REDIS_URL": redis.url,
                    "NOTICE_CHANNEL": f"interlock-test:{uuid.uuid4().hex}", "PYTHONPATH": str(WORKTREE),
                    "DJANGO_SETTINGS_MODULE": "service.settings", "LOG_LEVEL": "WARNING"}
        self.env.pop("INTERLOCK_STATE_DIR", None)
        self.postgres = postgres
        self.logs = logs
        self.processes: list[subprocess.Popen] = []

    def run(self, *args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "service.cli", *args], env=self.env, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("w")
        process = subprocess.Popen([sys.executable, "-m", "service.cli", *args], env=self.env,
                                   stdout=log, stderr=subprocess.STDOUT)
        self.processes.append(process)
        return process

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()

    def stop_all(self):
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


class Api:
    """An `interlock api` process and a tenant's key for it."""

    def __init__(self, stack: Stack, key: str, workers: int = 2):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.headers = {"Authorization": f"Bearer {key}"}
        self.process = stack.start("api", "api", "--port", str(self.port), "--workers", str(workers))
        deadline = time.monotonic() + 30
        while True:
            assert self.process.poll() is None, stack.log("api")
            try:
                requests.get(f"{self.base}/healthz", timeout=2)
                return
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "interlock api did not start"
                time.sleep(0.2)

    def call(self, method: str, path: str, body=None, timeout=40.0):
        return requests.request(method, f"{self.base}{path}", json=body, headers=self.headers, timeout=timeout)

    def timed(self, method: str, path: str, body=None):
        """(response, seconds it took)."""
        start = time.monotonic()
        response = self.call(method, path, body)
        return response, time.monotonic() - start


@pytest.fixture
def stack(private_postgres, private_redis, tmp_path):
    stack = Stack(private_postgres, private_redis, tmp_path)
    stack.run("migrate")
    yield stack
    stack.stop_all()


@pytest.fixture
def api(stack):
    key = json.loads(stack.run("tenant", "create", "acme"))["api_key"]
    return Api(stack, key)


def assert_unavailable(response):
    """The API's JSON error shape, saying the service is unavailable for now."""
    assert response.status_code == 503, response.text[:500]
    assert response.headers["Content-Type"].startswith("application/json"), response.text[:500]
    body = response.json()
    assert body["code"] == "unavailable"
    assert "retry" in body["message"].lower()
    assert body["errors"] == []
    assert int(response.headers["Retry-After"]) >= 1


def warm(api: Api, count: int = 6):
    """Requests enough that every worker holds a database connection, as in service."""
    for _ in range(count):
        assert api.call("GET", "/api/v1/meshes").status_code == 200


def test_api_answers_503_json_while_postgres_is_stopped(stack, api, private_postgres):
    assert api.call("POST", "/api/v1/meshes", {"name": "m1"}).status_code == 201
    warm(api)
    private_postgres.stop()

    for method, path, body in [("GET", "/api/v1/meshes", None), ("PATCH", "/api/v1/meshes/m1", {"description": "x"}),
                               ("GET", "/api/v1/tenant", None)]:
        response, took = api.timed(method, path, body)
        assert_unavailable(response)
        assert took < PROMPT_SEC, (method, path, took)
    # A key this process never saw is looked up in the database: authentication fails over too.
    unknown = requests.get(f"{api.base}/api/v1/meshes", headers={"Authorization": "Bearer ilk_0123456789ab_x"},
                           timeout=PROMPT_SEC)
    assert_unavailable(unknown)

    ready = requests.get(f"{api.base}/readyz", timeout=PROMPT_SEC)
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] != "ok"
    assert ready.json()["checks"]["notices"] == "ok"


def test_api_answers_within_seconds_while_postgres_is_frozen(stack, api, private_postgres):
    warm(api)
    private_postgres.freeze()
    try:
        # One request per worker, each on the connection its worker holds (the client's deadline ends them)...
        with ThreadPoolExecutor(2) as pool:
            held = list(pool.map(lambda _: api.timed("GET", "/api/v1/meshes"), range(2)))
        alive, alive_took = timed_get(f"{api.base}/healthz")
        # ... then twice as many requests as workers, on new connections (the connect timeout ends them).
        with ThreadPoolExecutor(4) as pool:
            queued = list(pool.map(lambda _: api.timed("GET", "/api/v1/meshes"), range(4)))
        ready, ready_took = timed_get(f"{api.base}/readyz")
    finally:
        private_postgres.thaw()
    for response, took in held + queued:
        assert_unavailable(response)
        assert took < PROMPT_SEC, took
    assert alive.status_code == 200 and alive_took < 3.0, alive_took
    assert ready.status_code == 503 and ready_took < 5.0, ready_took
    assert ready.json()["checks"]["database"] != "ok"
    # And once it thaws, the API is itself again.
    deadline = time.monotonic() + 20
    while api.call("GET", "/api/v1/meshes", timeout=PROMPT_SEC).status_code != 200:
        assert time.monotonic() < deadline, "the API did not recover after Postgres thawed"
        time.sleep(0.5)


def timed_get(url: str):
    start = time.monotonic()
    response = requests.get(url, timeout=40)
    return response, time.monotonic() - start


@pytest.mark.parametrize("fault", ["freeze", "stop"])
def test_a_write_that_commits_is_answered_while_redis_is_away(stack, api, private_postgres, private_redis, fault):
    assert api.call("POST", "/api/v1/meshes", {"name": "m1"}).status_code == 201
    warm(api)
    getattr(private_redis, fault)()
    try:
        response, took = api.timed("PATCH", "/api/v1/meshes/m1", {"description": "written while Redis was away"})
    finally:
        private_redis.thaw() if fault == "freeze" else private_redis.start()
    assert response.status_code == 200, response.text[:500]
    assert took < PROMPT_SEC, took
    with psycopg.connect(private_postgres.url.replace("postgres://", "postgresql://", 1)) as conn:
        (description,) = conn.execute("SELECT description FROM mesh_mesh WHERE name = 'm1'").fetchone()
    assert description == "written while Redis was away"
    assert "could not publish" in stack.log("api")


@contextlib.contextmanager
def clusters_of_a_new_replica(stack, token: str):
    """`interlock xds` started on a free port, and a SotW CDS stream of `token`
    whose first response is ACKed: yields (stream, first response); the
    replica must still run at the end."""
    port = free_port()
    replica = stack.start("xds", "xds", "--port", str(port), "--replica", "r1")
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=PROMPT_SEC)
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        stream = Stream(stub.StreamAggregatedResources, (("authorization", f"Bearer {token}"),))
        stream.send(sotw_request(CDS, node()))
        first = stream.recv(timeout=PROMPT_SEC)
        stream.send(sotw_request(CDS, version=first.version_info, nonce=first.nonce))
        yield stream, first
        stream.close()
    assert replica.poll() is None, stack.log("xds")


def test_a_replica_starts_without_redis_and_catches_up_when_it_returns(stack, api, private_redis):
    assert api.call("POST", "/api/v1/meshes", {"name": "m1"}).status_code == 201
    token = api.call("POST", "/api/v1/node-tokens", {"name": "n1", "mesh": "m1"}).json()["token"]
    private_redis.stop()

    with clusters_of_a_new_replica(stack, token) as (stream, first):
        assert first.resources == []  # the mesh has no services yet
        private_redis.start()
        created = api.call("POST", "/api/v1/backend-services", {"name": "web", "mesh": "m1", "protocol": "HTTP"})
        assert created.status_code == 201, created.text[:500]
        # Published once the API's Redis connection is back, or missed and
        # caught up when the replica's subscription is made: either way it arrives.
        second = stream.recv(timeout=20)
        assert second.version_info != first.version_info
        assert len(second.resources) == 1


def test_a_replica_catches_up_on_a_notice_lost_while_redis_was_frozen(stack, api, private_redis):
    """A freeze shorter than the subscription's PING watch leaves its connection
    up (no reconnect, no re-read): the replica's periodic check of its meshes'
    revisions is what brings it the change."""
    assert api.call("POST", "/api/v1/meshes", {"name": "m1"}).status_code == 201
    token = api.call("POST", "/api/v1/node-tokens", {"name": "n1", "mesh": "m1"}).json()["token"]
    stack.env["XDS_CATCH_UP_SEC"] = "2"
    with clusters_of_a_new_replica(stack, token) as (stream, _first):
        private_redis.freeze()
        try:
            created, took = api.timed("POST", "/api/v1/backend-services", {"name": "web", "mesh": "m1",
                                                                          "protocol": "HTTP"})
        finally:
            private_redis.thaw()
        assert created.status_code == 201, created.text[:500]
        assert took < PROMPT_SEC, took
        assert "could not publish" in stack.log("api")
        second = stream.recv(timeout=15)
        assert len(second.resources) == 1
