"""Resource warming: Envoy keeps an updated EDS cluster warming until it gets
that cluster's endpoints again, unchanged or not (over delta it does not even
ask), so a changed Cluster is followed by its ClusterLoadAssignment. Found by
the end-to-end tests: without it a circuit-breaker change never took effect."""
from envoy.service.discovery.v3.discovery_pb2 import (
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
)

from service.xds.cache import CacheKey
from service.xds.protocol import DeltaStream, SelectionMemo, SotwStream
from service.xds.snapshot import CLUSTER, ENDPOINT, Snapshot
from tests.service.xds.resources import cluster, endpoints

KEY = CacheKey("acme", "m1", "aws", "us-east-1")


def mesh(a_timeout=5, with_b=False):
    resources = [cluster("a-svc", timeout=a_timeout), endpoints("a-svc", 8080)]
    if with_b:
        resources += [cluster("b-svc"), endpoints("b-svc", 9090)]
    return Snapshot.of(resources)


NAMES = {ENDPOINT: ["a-svc"]}  # what the SotW stream subscribes to by name


def ack(stream, out):
    for sent in out:
        stream.on_request(DiscoveryRequest(type_url=sent.type_url, version_info=sent.version,
                                           response_nonce=sent.nonce, resource_names=NAMES.get(sent.type_url, [])))


def sotw_synced():
    stream = SotwStream(KEY, SelectionMemo())
    stream.on_request(DiscoveryRequest(type_url=CLUSTER))
    stream.on_request(DiscoveryRequest(type_url=ENDPOINT, resource_names=["a-svc"]))
    ack(stream, stream.responses(mesh()))
    return stream


def test_sotw_a_changed_cluster_is_followed_by_its_endpoints_unchanged():
    stream = sotw_synced()
    out = stream.responses(mesh(a_timeout=9))
    assert [o.type_url for o in out] == [CLUSTER, ENDPOINT]
    resent = DiscoveryResponse.FromString(out[1].body)
    assert len(resent.resources) == 1 and resent.nonce == out[1].nonce
    ack(stream, out)
    assert stream.responses(mesh(a_timeout=9)) == []


def test_sotw_a_new_cluster_does_not_resend_the_endpoints_of_the_others():
    stream = sotw_synced()
    out = stream.responses(mesh(with_b=True))
    assert [o.type_url for o in out] == [CLUSTER]  # b-svc's endpoints come when Envoy asks for them


def test_delta_a_changed_cluster_is_followed_by_its_endpoints_alone():
    stream = DeltaStream(KEY, SelectionMemo())
    stream.on_request(DeltaDiscoveryRequest(type_url=CLUSTER))
    stream.on_request(DeltaDiscoveryRequest(type_url=ENDPOINT, resource_names_subscribe=["a-svc", "b-svc"]))
    for sent in stream.responses(mesh(with_b=True)):
        stream.on_request(DeltaDiscoveryRequest(type_url=sent.type_url, response_nonce=sent.nonce))
    out = stream.responses(mesh(a_timeout=9, with_b=True))
    assert [o.type_url for o in out] == [CLUSTER, ENDPOINT]
    assert [r.name for r in DeltaDiscoveryResponse.FromString(out[0].body).resources] == ["a-svc"]
    assert [r.name for r in DeltaDiscoveryResponse.FromString(out[1].body).resources] == ["a-svc"]
