"""End to end inside the control plane: a policy change made through the API
is published, translated by the replica and pushed on open streams."""
import pytest
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import discovery_pb2

from service.dev import demo_policy
from service.xds.snapshot import CLUSTER, ENDPOINT
from tests.service.xds.conftest import node, sotw_request

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo(api):
    for collection, body in demo_policy():
        assert api.post(f"/api/v1/{collection}", body, format="json").status_code == 201
    response = api.post("/api/v1/node-tokens", {"name": "demo-proxies", "mesh": "demo"}, format="json")
    return response.json()["token"]


def addresses(response):
    found = []
    for any_ in response.resources:
        assignment = endpoint_pb2.ClusterLoadAssignment()
        any_.Unpack(assignment)
        found += [(e.endpoint.address.socket_address.address, e.endpoint.address.socket_address.port_value)
                  for group in assignment.endpoints for e in group.lb_endpoints]
    return sorted(found)


def test_an_endpoint_attached_through_the_api_is_pushed_in_sotw_and_delta(
        api, demo, translating_replica, channels, streams):
    channel = channels(translating_replica)
    sotw = streams(channel, demo)
    sotw.send(sotw_request(CLUSTER, node("sidecar", mesh="demo")))
    clusters = sotw.recv()
    assert clusters.type_url == CLUSTER and len(clusters.resources) == 2
    sotw.send(sotw_request(CLUSTER, version=clusters.version_info, nonce=clusters.nonce))
    sotw.send(sotw_request(ENDPOINT, names=["shop-v1"]))
    before = sotw.recv()
    assert addresses(before) == [("127.0.0.11", 8080)]
    sotw.send(sotw_request(ENDPOINT, names=["shop-v1"], version=before.version_info, nonce=before.nonce))

    delta = streams(channel, demo, delta=True)
    delta.send(discovery_pb2.DeltaDiscoveryRequest(type_url=ENDPOINT, node=node("delta", mesh="demo"),
                                                   resource_names_subscribe=["shop-v1"]))
    first = delta.recv()
    assert [r.name for r in first.resources] == ["shop-v1"]
    delta.send(discovery_pb2.DeltaDiscoveryRequest(type_url=ENDPOINT, response_nonce=first.nonce))

    attached = api.post("/api/v1/endpoint-groups/shop-v1-east/attach",
                        {"endpoints": [{"address": "127.0.0.21", "port": 8080}]}, format="json")
    assert attached.status_code == 200, attached.json()
    pushed = sotw.recv()
    assert pushed.type_url == ENDPOINT and addresses(pushed) == [("127.0.0.11", 8080), ("127.0.0.21", 8080)]
    delta_pushed = delta.recv()
    assert [r.name for r in delta_pushed.resources] == ["shop-v1"]
    assert delta_pushed.resources[0].version != first.resources[0].version
    sotw.nothing_within(0.3)  # the clusters themselves did not change
