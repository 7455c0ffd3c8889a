"""The stream limits over real gRPC: a request past a limit ends its stream
with a status a person can act on, other streams go on; a stream that never
sends its first request is ended after the deadline; a closed stream's state
is freed."""
import asyncio
import gc
import time

import grpc
import pytest
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from envoy.service.load_stats.v3 import lrs_pb2_grpc

from service.xds.cache import CacheKey
from service.xds.protocol import MAX_NAME_LENGTH, MAX_NAMES_PER_REQUEST, DeltaStream, SotwStream
from service.xds.snapshot import CLUSTER, ENDPOINT
from tests.service.xds.conftest import eventually, node, sotw_request
from tests.service.xds.test_server import expect_refusal

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_request_past_a_limit_ends_only_its_own_stream(api, token, replica, channels, streams):
    channel = channels(replica)
    bystander = streams(channel, token).send(sotw_request(CLUSTER, node("bystander")))
    bystander.recv()

    many = streams(channel, token).send(sotw_request(CLUSTER, node("many")))
    many.recv()
    many.send(sotw_request(ENDPOINT, names=[f"n{i}" for i in range(MAX_NAMES_PER_REQUEST + 1)]))
    message = expect_refusal(many, grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert message == f"the request names {MAX_NAMES_PER_REQUEST + 1} resources; at most {MAX_NAMES_PER_REQUEST} " \
                      f"per request"

    long_name = streams(channel, token, delta=True).send(discovery_pb2.DeltaDiscoveryRequest(
        type_url=ENDPOINT, node=node("long"), resource_names_subscribe=["x" * (MAX_NAME_LENGTH + 1)]))
    assert "at most 512" in expect_refusal(long_name, grpc.StatusCode.INVALID_ARGUMENT)

    unknown = streams(channel, token).send(sotw_request("type.googleapis.com/acme.Bogus", node("unknown")))
    assert "is not an xDS resource type" in expect_refusal(unknown, grpc.StatusCode.INVALID_ARGUMENT)

    bystander.send(sotw_request(ENDPOINT, names=["a-svc"]))
    assert bystander.recv().type_url == ENDPOINT
    counts = replica.server.callbacks.counts
    assert counts["ended:RESOURCE_EXHAUSTED"] == 1 and counts["ended:INVALID_ARGUMENT"] == 2


async def silent_calls(port, count, token):
    """Open ``count`` ADS streams (every other one with a token) and one LRS
    stream that never send a request; the status each ends with, and when."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        ads = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        lrs = lrs_pb2_grpc.LoadReportingServiceStub(channel)
        calls = [ads.StreamAggregatedResources(metadata=(("authorization", f"Bearer {token}"),) if i % 2 else ())
                 for i in range(count)]
        calls.append(lrs.StreamLoadStats())
        started = time.monotonic()
        codes = await asyncio.wait_for(asyncio.gather(*(call.code() for call in calls)), timeout=30)
        return codes, time.monotonic() - started, await calls[0].details()


def test_streams_that_never_send_a_first_request_are_ended_after_the_deadline(api, token, replica):
    replica.server.first_request_timeout = 1.0
    codes, took, details = asyncio.run(silent_calls(replica.port, 300, token))
    assert set(codes) == {grpc.StatusCode.DEADLINE_EXCEEDED}
    assert took < 10, f"300 silent streams took {took:.1f} s to be ended"
    assert details == "no request within 1 s of opening the stream; the first request must carry the node"
    assert replica.server.callbacks.counts["ended:DEADLINE_EXCEEDED"] == 301


def stream_states():
    # type(), not isinstance(): isinstance would wake Django's lazy objects.
    return [o for o in gc.get_objects() if type(o) in (SotwStream, DeltaStream)]


def test_a_closed_streams_state_is_freed(api, token, replica, channels, streams):
    channel = channels(replica)
    sotw = streams(channel, token).send(sotw_request(CLUSTER, node("s")))
    sotw.recv()
    sotw.send(sotw_request(ENDPOINT, names=[f"n{i}".ljust(100, "x") for i in range(MAX_NAMES_PER_REQUEST)]))
    sotw.recv()
    delta = streams(channel, token, delta=True).send(discovery_pb2.DeltaDiscoveryRequest(
        type_url=ENDPOINT, node=node("d"), resource_names_subscribe=[f"n{i}" for i in range(5000)]))
    delta.recv()
    assert len(stream_states()) == 2
    sotw.close()
    delta.close()

    def freed():
        gc.collect()
        return not stream_states()

    eventually(freed)


def test_localities_proxies_invent_leave_no_snapshots_behind(api, token, replica, channels, streams):
    channel = channels(replica)
    for i in range(100):
        stream = streams(channel, token).send(sotw_request(CLUSTER, node(f"n{i}", region=f"invented-{i}")))
        stream.recv()
        stream.close()
    staying = streams(channel, token).send(sotw_request(CLUSTER, node("staying")))
    staying.recv()
    eventually(lambda: replica.cache.keys("acme", "m1") == {CacheKey("acme", "m1", "aws", "us-east-1")})
