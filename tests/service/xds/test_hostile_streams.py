"""What one tenant's hostile streams may cost a real `interlock xds` replica
(a subprocess, its RSS read from /proc): the request pattern of issue 12's
finding 2, scaled to run in seconds, and a bounded fuzz of both ADS methods
while a control proxy of another tenant measures its push latency."""
import os
import signal
import subprocess
from pathlib import Path

import grpc
import pytest
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from service.xds.snapshot import CLUSTER, ENDPOINT
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


def test_many_names_leave_the_replicas_rss_bounded_and_a_closed_stream_frees_them(api, xds_process):
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
