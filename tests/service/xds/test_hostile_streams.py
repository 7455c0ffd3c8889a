"""What one tenant's hostile streams may cost a real `interlock xds` replica
(a subprocess, its RSS read from /proc): the request pattern of issue 12's
finding 2, scaled to run in seconds, and a bounded fuzz of every method
(hostile SotW and delta requests, bytes that are no request) while a control
proxy of another tenant measures its push latency."""
import concurrent.futures
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from service.dev import demo_policy
from service.xds.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE
from tests.service.test_cli import free_port, interlock_script
from tests.service.xds.conftest import Stream, node
from tests.service.xds.test_cli_xds import database_url

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MIB = 1 << 20


def rss(pid: int) -> int:
    """Resident set size of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.fixture
def xds_process(settings):
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url(settings), "NOTICE_CHANNEL": settings.NOTICE_CHANNEL}
    process = subprocess.Popen([interlock_script(), "xds", "--port", str(port), "--replica", "hostile-1"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=60)
        yield process, channel
    finally:
        channel.close()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def token_of(client, mesh="m1"):
    assert client.post("/api/v1/meshes", {"name": mesh}, format="json").status_code == 201
    response = client.post("/api/v1/node-tokens", {"name": "t", "mesh": mesh}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["token"]


def sotw_stream(channel, token):
    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
    return Stream(stub.StreamAggregatedResources, (("authorization", f"Bearer {token}"),))


# Finding 2, scaled: each request names NAMES distinct ~100-character resources
# (within the per-request limit) with the last nonce; ROUNDS of them. Before
# the fix, the selection memo kept every name set as a key: about
# ROUNDS x NAMES x 180 bytes (some 100 MB) that no stream closing gave back.
ROUNDS, NAMES = 60, 10_000
RSS_GROWTH_BOUND = 48 * MIB


def hostile_names(round_: int) -> list[str]:
    return [f"r{round_}-n{i}-".ljust(100, "x") for i in range(NAMES)]


def subscribe_many_names(stream):
    stream.send(discovery_pb2.DiscoveryRequest(type_url=CLUSTER, node=node(tenant="acme")))
    stream.recv(timeout=30)
    nonce = ""
    for round_ in range(ROUNDS):
        stream.send(discovery_pb2.DiscoveryRequest(type_url=ENDPOINT, resource_names=hostile_names(round_),
                                                   response_nonce=nonce))
        nonce = stream.recv(timeout=30).nonce


def test_many_names_leave_the_replicas_rss_bounded_stream_after_stream(api, xds_process):
    # Each stream closes before the next opens: what the first held (its
    # names, the memo's entries for them) must not add up with the second's.
    process, channel = xds_process
    token = token_of(api)
    warm = sotw_stream(channel, token)
    warm.send(discovery_pb2.DiscoveryRequest(type_url=CLUSTER, node=node(name="warm", tenant="acme")))
    warm.recv(timeout=30)
    baseline = rss(process.pid)

    for attempt in range(2):
        stream = sotw_stream(channel, token)
        subscribe_many_names(stream)
        during = rss(process.pid)
        stream.close()
        assert during - baseline < RSS_GROWTH_BOUND, (
            f"stream {attempt}: RSS grew {(during - baseline) / MIB:.0f} MiB (baseline {baseline / MIB:.0f} MiB)")
    warm.close()


# The fuzz: a seeded generator, bounded in streams and in time.
FUZZ_SEED = 12
FUZZ_STREAMS = 240
FUZZ_SECONDS = 20.0
FUZZ_WORKERS = 4
FUZZ_RSS_GROWTH_BOUND = 96 * MIB
# The control proxy's push latency (API 2xx to the push on its stream) while
# the fuzz runs: within this many times its latency before, plus this slack.
LATENCY_FACTOR, LATENCY_SLACK = 3.0, 0.5
PUSHES = 5

ADS = "/envoy.service.discovery.v3.AggregatedDiscoveryService/"
CSDS = "/envoy.service.status.v3.ClientStatusDiscoveryService/"
RAW_PATHS = (ADS + "StreamAggregatedResources", ADS + "DeltaAggregatedResources",
             "/envoy.service.load_stats.v3.LoadReportingService/StreamLoadStats",
             CSDS + "StreamClientStatus", CSDS + "FetchClientStatus")
SERVED = (CLUSTER, ENDPOINT, LISTENER, ROUTE)
REFUSED_TYPES = ("type.googleapis.com/acme.Bogus", "", "type.googleapis.com/" + "x" * 300)
SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
# What a hostile stream may be ended with: never UNKNOWN or INTERNAL (a server error).
ENDINGS = {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INVALID_ARGUMENT,
           grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}


class Fuzz:
    """Hostile requests from a seeded generator. Server nonces are counters
    ("1", "2", ...), so old and current ones can be guessed without reading."""

    def __init__(self, seed: int, token: str, api_key: str):
        self.random = random.Random(seed)
        self.token = token
        self.api_key = api_key

    def rarely(self, share: float = 0.03) -> bool:
        return self.random.random() < share

    def type_url(self) -> str:
        # Mostly served types, so that streams live long enough for the nonce games.
        return self.random.choice(REFUSED_TYPES if self.rarely() else (SECRET,) if self.rarely(0.05) else SERVED)

    def text(self, longest: int) -> str:
        # No NUL: a NUL in a stored field is finding 1 (proxy records), not this fuzz's subject.
        length = longest if self.rarely() else self.random.choice((0, 1, 8, 60))
        return "".join(chr(self.random.choice((self.random.randint(32, 126), self.random.randint(160, 0x2FFF))))
                       for _ in range(length))

    def names(self) -> list[str]:
        count = 10_001 if self.rarely() else self.random.choice((0, 0, 1, 3, 50, 2_000))
        names = [f"n{i}-{self.random.getrandbits(32)}" for i in range(count)]
        if self.rarely(0.06):
            names.append("x" * self.random.choice((512, 513, 100_000)))
        if self.random.random() < 0.3:
            names.append("*")  # wildcard toggling
        return names

    def nonce(self) -> str:
        return self.random.choice(("", "1", "2", str(self.random.randint(3, 50)), "stale", "9" * 100_000))

    def node(self):
        return node(name=f"fuzz-{self.random.getrandbits(24)}", tenant="acme")

    def sotw(self) -> list:
        requests = []
        for i in range(self.random.randint(1, 12)):
            request = discovery_pb2.DiscoveryRequest(type_url=self.type_url(), resource_names=self.names(),
                                                     response_nonce=self.nonce(), version_info=self.text(300))
            if i == 0:
                request.node.CopyFrom(self.node())
            if self.random.random() < 0.2:
                request.error_detail.message = self.text(5000)
            requests.append(request)
        if self.random.random() < 0.3:
            requests += requests[-1:] * self.random.randint(2, 20)  # repeated ACKs
        return requests

    def delta(self) -> list:
        requests = []
        for i in range(self.random.randint(1, 12)):
            request = discovery_pb2.DeltaDiscoveryRequest(
                type_url=self.type_url(), resource_names_subscribe=self.names(),
                resource_names_unsubscribe=self.names(), response_nonce=self.nonce())
            if i == 0:
                request.node.CopyFrom(self.node())
                versions = self.text(300) if self.rarely() else "v1"
                for name in self.names()[:3000]:
                    request.initial_resource_versions[name] = versions
            if self.random.random() < 0.2:
                request.error_detail.message = self.text(5000)
            requests.append(request)
        return requests

    def raw(self) -> list[bytes]:
        sizes = (0, 1, 17, 300, 5000, 1 << 20, (4 << 20) + 1)
        return [self.random.randbytes(self.random.choice(sizes)) for _ in range(self.random.randint(1, 4))]


def run_call(call) -> tuple[grpc.StatusCode, str]:
    try:
        for _ in call:
            pass
    except grpc.RpcError as error:
        return error.code(), error.details()
    return grpc.StatusCode.OK, ""


def fuzz_one(channel, fuzz: Fuzz, kind: str):
    path = fuzz.random.choice(RAW_PATHS)
    credential = fuzz.api_key if path.startswith(CSDS) and kind == "raw" else fuzz.token
    metadata = (("authorization", f"Bearer {credential}"),) if fuzz.random.random() < 0.9 else ()
    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
    if kind == "sotw":
        return kind, *run_call(stub.StreamAggregatedResources(iter(fuzz.sotw()), metadata=metadata, timeout=20))
    if kind == "delta":
        return kind, *run_call(stub.DeltaAggregatedResources(iter(fuzz.delta()), metadata=metadata, timeout=20))
    if path.endswith("FetchClientStatus"):
        try:
            channel.unary_unary(path)(fuzz.raw()[0], metadata=metadata, timeout=20)
            return path, grpc.StatusCode.OK, ""
        except grpc.RpcError as error:
            return path, error.code(), error.details()
    method = channel.stream_stream(path)  # bytes in, bytes out
    return path, *run_call(method(iter(fuzz.raw()), metadata=metadata, timeout=20))


def run_fuzz(channel, token, api_key):
    """Every hostile stream's (kind or raw path, status code, details), within the bounds."""
    fuzzes = [Fuzz(FUZZ_SEED * 1000 + i, token, api_key) for i in range(FUZZ_STREAMS)]
    kinds = ("sotw", "delta", "raw")
    deadline = time.monotonic() + FUZZ_SECONDS
    with concurrent.futures.ThreadPoolExecutor(FUZZ_WORKERS) as pool:
        futures = [pool.submit(lambda f=f, k=kinds[i % 3]: fuzz_one(channel, f, k) if time.monotonic() < deadline
                               else None) for i, f in enumerate(fuzzes)]
        return [r for r in (f.result(timeout=FUZZ_SECONDS + 30) for f in futures) if r is not None]


def addresses(response) -> list[str]:
    found = []
    for any_ in response.resources:
        assignment = endpoint_pb2.ClusterLoadAssignment()
        any_.Unpack(assignment)
        found += [e.endpoint.address.socket_address.address for g in assignment.endpoints for e in g.lb_endpoints]
    return found


class ControlProxy:
    """Another tenant's proxy watching one service's endpoints; each push()
    attaches an endpoint through the API and times its arrival."""

    def __init__(self, channel, client):
        for collection, body in demo_policy():
            assert client.post(f"/api/v1/{collection}", body, format="json").status_code == 201
        token = client.post("/api/v1/node-tokens", {"name": "ctl", "mesh": "demo"}, format="json").json()["token"]
        self.client = client
        self.stream = sotw_stream(channel, token)
        self.stream.send(discovery_pb2.DiscoveryRequest(type_url=ENDPOINT, resource_names=["shop-v1"],
                                                        node=node("control", tenant="globex", mesh="demo")))
        self.ack(self.stream.recv(timeout=30))
        self.attached = 0

    def ack(self, response):
        self.stream.send(discovery_pb2.DiscoveryRequest(type_url=ENDPOINT, resource_names=["shop-v1"],
                                                        version_info=response.version_info,
                                                        response_nonce=response.nonce))
        return response

    def push(self) -> float:
        self.attached += 1
        address = f"127.0.1.{self.attached}"
        response = self.client.post("/api/v1/endpoint-groups/shop-v1-east/attach",
                                    {"endpoints": [{"address": address, "port": 8080}]}, format="json")
        assert response.status_code == 200, response.json()
        committed = time.monotonic()
        pushed = self.ack(self.stream.recv(timeout=30))
        assert address in addresses(pushed)
        return time.monotonic() - committed


def test_a_bounded_fuzz_leaves_the_replica_up_its_memory_bounded_and_another_tenants_pushes_on_time(
        api, other_api, xds_process):
    process, channel = xds_process
    control = ControlProxy(channel, other_api)
    token = token_of(api)
    before = [control.push() for _ in range(PUSHES)]
    baseline = rss(process.pid)

    with concurrent.futures.ThreadPoolExecutor(1) as background:
        fuzzing = background.submit(run_fuzz, channel, token, api.key)
        time.sleep(1.0)  # let it get going
        during = [control.push() for _ in range(PUSHES)]
        assert not fuzzing.done(), "the fuzz ended before the control proxy's pushes were measured"
        endings = fuzzing.result(timeout=FUZZ_SECONDS + 60)
    grown = rss(process.pid) - baseline

    assert process.poll() is None
    assert len(endings) >= 60, f"only {len(endings)} fuzz streams ran in {FUZZ_SECONDS} s"
    wrong = [end for end in endings if end[1] not in ENDINGS]
    assert not wrong, wrong[:5]
    assert {code for _, code, _ in endings} >= {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INVALID_ARGUMENT}
    bound = max(before) * LATENCY_FACTOR + LATENCY_SLACK
    assert max(during) <= bound, f"pushes took {during} during the fuzz, {before} before (bound {bound:.3f} s)"
    assert grown < FUZZ_RSS_GROWTH_BOUND, f"RSS grew {grown / MIB:.0f} MiB during the fuzz"
    control.push()  # and after it
