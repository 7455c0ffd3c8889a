"""Who may hold a stream, and for how long: the tenant's max_proxies is
enforced at connect, across replicas; a revoked node token's ADS and LRS
streams and a revoked API key's CSDS streams are ended within a few seconds,
and the token or key opens no new stream meanwhile."""
import queue
import time

import grpc
import pytest
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.load_stats.v3 import lrs_pb2, lrs_pb2_grpc
from envoy.service.status.v3 import csds_pb2, csds_pb2_grpc

from service.xds.models import Proxy
from service.xds.snapshot import CLUSTER
from tests.service.xds.conftest import Stream, eventually, node, sotw_request
from tests.service.xds.resources import mesh_snapshot
from tests.service.xds.test_server import expect_refusal

pytestmark = pytest.mark.django_db(transaction=True)

# Within how long a revoked credential's streams must end: the re-check
# interval (2 s by default) and some slack for a loaded machine.
REVOKED_WITHIN = 6.0


def connect(streams, channel, token, name, tenant="acme"):
    stream = streams(channel, token)
    stream.send(sotw_request(CLUSTER, node(name, tenant=tenant)))
    return stream


def served(stream):
    assert stream.recv().type_url == CLUSTER
    return stream


def connected_rows(tenant, names):
    return set(Proxy.objects.filter(tenant=tenant, disconnected_at__isnull=True).values_list("name", flat=True)) \
        == set(names)


def test_a_tenant_beyond_max_proxies_is_refused_a_new_proxy_but_not_a_reconnect(
        api, other_api, token, hand, start_replica, channels, streams):
    api.tenant.max_proxies = 3
    api.tenant.save()
    r1, r2 = start_replica("r1"), start_replica("r2")
    on_r1, on_r2 = channels(r1), channels(r2)
    served(connect(streams, on_r1, token, "n1"))
    served(connect(streams, on_r1, token, "n2"))
    served(connect(streams, on_r2, token, "n3"))
    # r2 counts r1's proxies from the database, and its own from its streams.
    eventually(lambda: connected_rows(api.tenant, ["n1", "n2", "n3"]))
    for channel in (on_r1, on_r2):
        message = expect_refusal(connect(streams, channel, token, "n4"), grpc.StatusCode.RESOURCE_EXHAUSTED)
        assert "max_proxies quota is 3" in message and "3 proxies are connected" in message
    # A node already connected may reconnect, here or on another replica.
    served(connect(streams, on_r1, token, "n2"))
    served(connect(streams, on_r2, token, "n1"))
    # Another tenant is not affected.
    assert other_api.post("/api/v1/meshes", {"name": "m1"}, format="json").status_code == 201
    hand.snapshots[("globex", "m1")] = mesh_snapshot("g")
    other_token = other_api.post("/api/v1/node-tokens", {"name": "t", "mesh": "m1"}, format="json").json()["token"]
    for name in ("n1", "n2", "n3", "n4"):
        served(connect(streams, on_r1, other_token, name, tenant="globex"))
    assert not Proxy.objects.filter(tenant=api.tenant, name="n4").exists()


def test_a_proxy_that_left_makes_room_for_a_new_one(api, token, replica, channels, streams):
    api.tenant.max_proxies = 1
    api.tenant.save()
    channel = channels(replica)
    first = served(connect(streams, channel, token, "n1"))
    assert "max_proxies quota is 1" in expect_refusal(connect(streams, channel, token, "n2"),
                                                      grpc.StatusCode.RESOURCE_EXHAUSTED)
    first.close()
    eventually(lambda: connected_rows(api.tenant, []))
    served(connect(streams, channel, token, "n2"))


def csds_stream(channel, key) -> Stream:
    stub = csds_pb2_grpc.ClientStatusDiscoveryServiceStub(channel)
    return Stream(stub.StreamClientStatus, (("authorization", f"Bearer {key}"),))


def ask(stream: Stream):
    return stream.send(csds_pb2.ClientStatusRequest()).recv()


def open_lrs(channel, token):
    requests = queue.Queue()
    requests.put(lrs_pb2.LoadStatsRequest(node=node("n1")))
    call = lrs_pb2_grpc.LoadReportingServiceStub(channel).StreamLoadStats(
        iter(requests.get, None), metadata=(("authorization", f"Bearer {token}"),))
    next(call)  # the server's first answer: the stream is open
    return call


def test_a_revoked_node_token_ends_its_ads_and_lrs_streams_and_opens_no_new_one(
        api, token, replica, channels, streams):
    channel = channels(replica)
    sotw = served(connect(streams, channel, token, "n1"))
    delta = streams(channel, token, delta=True)
    delta.send(discovery_pb2.DeltaDiscoveryRequest(type_url=CLUSTER, node=node("n2")))
    assert delta.recv().type_url == CLUSTER
    lrs = open_lrs(channel, token)
    assert api.delete("/api/v1/node-tokens/tok1").status_code == 204
    revoked_at = time.monotonic()
    for stream in (sotw, delta):
        with pytest.raises(grpc.RpcError) as ended:
            stream.recv(timeout=REVOKED_WITHIN)
        assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "node token has been revoked" in ended.value.details()
    with pytest.raises(grpc.RpcError) as ended:
        next(lrs)
    assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert time.monotonic() - revoked_at < REVOKED_WITHIN
    # Nor does it open a new stream, though its check was remembered moments ago.
    expect_refusal(connect(streams, channel, token, "n3"), grpc.StatusCode.UNAUTHENTICATED)
    eventually(lambda: connected_rows(api.tenant, []))


def test_a_revoked_api_key_ends_its_csds_streams(api, client_for, token, replica, channels):
    key = client_for(api.tenant, name="observer").key
    channel = channels(replica)
    observer, owner = csds_stream(channel, key), csds_stream(channel, api.key)
    assert isinstance(ask(observer), csds_pb2.ClientStatusResponse)
    assert isinstance(ask(owner), csds_pb2.ClientStatusResponse)
    assert api.delete("/api/v1/api-keys/observer").status_code == 204
    with pytest.raises(grpc.RpcError) as ended:
        observer.recv(timeout=REVOKED_WITHIN)
    assert ended.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "API key has been revoked" in ended.value.details()
    assert isinstance(ask(owner), csds_pb2.ClientStatusResponse)  # another key's stream goes on
    with pytest.raises(grpc.RpcError) as refused:
        csds_pb2_grpc.ClientStatusDiscoveryServiceStub(channel).FetchClientStatus(
            csds_pb2.ClientStatusRequest(), metadata=(("authorization", f"Bearer {key}"),))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
