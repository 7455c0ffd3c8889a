"""The xDS protocol of one stream as pure state machines (no server): what is
sent for which request, ACK/NACK, stale nonces, subscriptions, removals."""
from envoy.service.discovery.v3.discovery_pb2 import (
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
)
from google.rpc import status_pb2

from service.xds.cache import CacheKey
from service.xds.protocol import Ack, DeltaStream, Nack, SelectionMemo, SotwStream, Subscription
from service.xds.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE, Snapshot
from tests.service.xds.resources import cluster, endpoints, listener, mesh_snapshot, routes

KEY = CacheKey("acme", "m1", "aws", "us-east-1")


def sotw(memo=None, key=KEY):
    return SotwStream(key, memo or SelectionMemo())


def names_in(out):
    return sorted(any_.TypeName() + ":" + _name(any_) for any_ in DiscoveryResponse.FromString(out.body).resources)


def _name(any_):
    from google.protobuf import symbol_database

    message = symbol_database.Default().GetSymbol(any_.TypeName())()
    any_.Unpack(message)
    return message.cluster_name if any_.TypeName().endswith("ClusterLoadAssignment") else message.name


def test_sotw_wildcard_gets_wildcard_resources_in_push_order():
    stream = sotw()
    for type_url in (LISTENER, CLUSTER):
        assert stream.on_request(DiscoveryRequest(type_url=type_url)) is None
    out = stream.responses(mesh_snapshot("a"))
    assert [o.type_url for o in out] == [CLUSTER, LISTENER]  # make before break
    assert names_in(out[1]) == ["envoy.config.listener.v3.Listener:a-outbound"]  # not the API listener
    response = DiscoveryResponse.FromString(out[1].body)
    assert response.nonce == out[1].nonce and response.version_info == out[1].version
    assert response.type_url == LISTENER
    assert stream.responses(mesh_snapshot("a")) == []  # nothing changed: nothing sent


def test_sotw_ack_nack_and_stale_nonces():
    stream = sotw()
    stream.on_request(DiscoveryRequest(type_url=CLUSTER))
    (first,) = stream.responses(mesh_snapshot("a"))
    ack = stream.on_request(DiscoveryRequest(type_url=CLUSTER, version_info=first.version, response_nonce=first.nonce))
    assert ack == Ack(CLUSTER, first.version, first.nonce)
    (second,) = stream.responses(mesh_snapshot("b"))
    # A request answering the older response is stale: ignored, even its names.
    assert stream.on_request(DiscoveryRequest(type_url=CLUSTER, response_nonce=first.nonce,
                                              resource_names=["x"])) is None
    assert stream.responses(mesh_snapshot("b")) == []
    nack = stream.on_request(DiscoveryRequest(
        type_url=CLUSTER, version_info=first.version, response_nonce=second.nonce,
        error_detail=status_pb2.Status(code=3, message="cluster b-svc: bad timeout")))
    assert nack == Nack(CLUSTER, first.version, second.nonce, "cluster b-svc: bad timeout")
    assert stream.responses(mesh_snapshot("b")) == []  # a rejected version is not sent again
    (third,) = stream.responses(mesh_snapshot("c"))
    assert third.nonce != second.nonce and third.version != second.version


def test_sotw_sends_only_the_types_whose_subscribed_resources_changed():
    stream = sotw()
    for type_url in (CLUSTER, ENDPOINT):
        stream.on_request(DiscoveryRequest(type_url=type_url, resource_names=["a-svc"] if type_url == ENDPOINT else []))
    before = Snapshot.of([cluster("a-svc"), endpoints("a-svc", 1), endpoints("other", 1)])
    stream.responses(before)
    other_changed = Snapshot.of([cluster("a-svc"), endpoints("a-svc", 1), endpoints("other", 2)])
    assert stream.responses(other_changed) == []  # EDS of a resource this stream did not ask for
    mine_changed = Snapshot.of([cluster("a-svc"), endpoints("a-svc", 2), endpoints("other", 2)])
    assert [o.type_url for o in stream.responses(mine_changed)] == [ENDPOINT]


def test_sotw_named_subscription_changes_are_answered():
    stream = sotw()
    snapshot = Snapshot.of([routes("r1"), routes("r2")])
    stream.on_request(DiscoveryRequest(type_url=ROUTE, resource_names=["r1"]))
    (first,) = stream.responses(snapshot)
    assert names_in(first) == ["envoy.config.route.v3.RouteConfiguration:r1"]
    stream.on_request(DiscoveryRequest(type_url=ROUTE, resource_names=["r1", "r2"], version_info=first.version,
                                       response_nonce=first.nonce))
    (second,) = stream.responses(snapshot)
    assert names_in(second) == ["envoy.config.route.v3.RouteConfiguration:r1",
                                "envoy.config.route.v3.RouteConfiguration:r2"]
    # Asking for one that does not exist is answered too (with what does).
    stream.on_request(DiscoveryRequest(type_url=ROUTE, resource_names=["r3"], response_nonce=second.nonce))
    (third,) = stream.responses(snapshot)
    assert names_in(third) == []


def test_sotw_grpc_client_gets_its_api_listener_by_name():
    stream = sotw()
    stream.on_request(DiscoveryRequest(type_url=LISTENER, resource_names=["xds:///a.example"]))
    (out,) = stream.responses(mesh_snapshot("a"))
    assert names_in(out) == ["envoy.config.listener.v3.Listener:xds:///a.example"]


def test_sotw_reconnect_with_the_current_version_is_not_resent():
    snapshot = mesh_snapshot("a")
    first = sotw()
    first.on_request(DiscoveryRequest(type_url=CLUSTER))
    (sent,) = first.responses(snapshot)
    again = sotw()
    again.on_request(DiscoveryRequest(type_url=CLUSTER, version_info=sent.version))
    assert again.responses(snapshot) == []
    stale_client = sotw()
    stale_client.on_request(DiscoveryRequest(type_url=CLUSTER, version_info="old"))
    assert len(stale_client.responses(snapshot)) == 1


def test_streams_of_one_key_share_one_serialized_body_and_other_keys_do_not():
    memo = SelectionMemo()
    snapshot = mesh_snapshot("a")
    bodies = []
    for key in (KEY, KEY, CacheKey("globex", "m1", "aws", "us-east-1")):
        stream = sotw(memo, key)
        bodies.append(memo.select(key, snapshot, CLUSTER, Subscription(wildcard=True)))
        stream.on_request(DiscoveryRequest(type_url=CLUSTER))
        stream.responses(snapshot)
    assert bodies[0] is bodies[1]
    assert bodies[2] is not bodies[0]
    assert bodies[0].sotw_body is bodies[1].sotw_body


def test_no_snapshot_yet_means_nothing_sent_until_there_is_one():
    stream = sotw()
    stream.on_request(DiscoveryRequest(type_url=CLUSTER))
    assert stream.responses(None) == []
    assert len(stream.responses(mesh_snapshot())) == 1


# Delta

def delta_resources(out):
    response = DeltaDiscoveryResponse.FromString(out.body)
    return {r.name: r.version for r in response.resources}, list(response.removed_resources), response


def test_delta_wildcard_then_changes_and_removals():
    stream = DeltaStream(KEY, SelectionMemo())
    assert stream.on_request(DeltaDiscoveryRequest(type_url=CLUSTER)) is None
    one = Snapshot.of([cluster("a"), cluster("b")])
    (first,) = stream.responses(one)
    sent, removed, response = delta_resources(first)
    assert sent == {"a": cluster("a").version, "b": cluster("b").version} and removed == []
    assert response.nonce == first.nonce and response.system_version_info == first.version
    assert stream.on_request(DeltaDiscoveryRequest(type_url=CLUSTER, response_nonce=first.nonce)) == \
        Ack(CLUSTER, first.version, first.nonce)
    two = Snapshot.of([cluster("a", timeout=9), cluster("c")])
    (second,) = stream.responses(two)
    sent, removed, _ = delta_resources(second)
    assert sent == {"a": cluster("a", timeout=9).version, "c": cluster("c").version}
    assert removed == ["b"]
    assert stream.responses(two) == []


def test_delta_named_subscribe_unsubscribe_and_nonexistent_names():
    stream = DeltaStream(KEY, SelectionMemo())
    snapshot = Snapshot.of([endpoints("a", 1), endpoints("b", 1)])
    stream.on_request(DeltaDiscoveryRequest(type_url=ENDPOINT, resource_names_subscribe=["a", "ghost"]))
    (first,) = stream.responses(snapshot)
    sent, removed, _ = delta_resources(first)
    assert sent == {"a": endpoints("a", 1).version}
    assert removed == ["ghost"]  # told once that it does not exist
    stream.on_request(DeltaDiscoveryRequest(type_url=ENDPOINT, response_nonce=first.nonce,
                                            resource_names_subscribe=["b"], resource_names_unsubscribe=["a"]))
    (second,) = stream.responses(snapshot)
    assert delta_resources(second)[:2] == ({"b": endpoints("b", 1).version}, [])
    # a changes, but the stream no longer wants it.
    assert stream.responses(Snapshot.of([endpoints("a", 2), endpoints("b", 1)])) == []


def test_delta_initial_versions_skip_what_the_client_has():
    snapshot = Snapshot.of([cluster("a"), cluster("b")])
    stream = DeltaStream(KEY, SelectionMemo())
    stream.on_request(DeltaDiscoveryRequest(
        type_url=CLUSTER, initial_resource_versions={"a": cluster("a").version, "gone": "v0"}))
    (out,) = stream.responses(snapshot)
    assert delta_resources(out)[:2] == ({"b": cluster("b").version}, ["gone"])


def test_delta_nack_names_the_error_and_explicit_wildcard_works_for_any_type():
    stream = DeltaStream(KEY, SelectionMemo())
    stream.on_request(DeltaDiscoveryRequest(type_url=ROUTE, resource_names_subscribe=["*"]))
    (out,) = stream.responses(Snapshot.of([routes("r1")]))
    assert delta_resources(out)[0] == {"r1": routes("r1").version}
    nack = stream.on_request(DeltaDiscoveryRequest(type_url=ROUTE, response_nonce=out.nonce,
                                                   error_detail=status_pb2.Status(message="no")))
    assert nack == Nack(ROUTE, out.version, out.nonce, "no")
    # The same nonce again is no longer outstanding.
    assert stream.on_request(DeltaDiscoveryRequest(type_url=ROUTE, response_nonce=out.nonce)) is None


def test_delta_sidecar_does_not_get_api_listeners_by_wildcard():
    stream = DeltaStream(KEY, SelectionMemo())
    stream.on_request(DeltaDiscoveryRequest(type_url=LISTENER))
    (out,) = stream.responses(Snapshot.of([listener("outbound"), listener("xds:///x", wildcard=False)]))
    assert list(delta_resources(out)[0]) == ["outbound"]
