"""The stream server over real gRPC on loopback: SotW and delta ADS, auth and
tenant isolation, ACK/NACK records on the proxies API, pushes on change
notices across replicas, CSDS and LRS."""

import grpc
import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.load_stats.v3 import lrs_pb2, lrs_pb2_grpc
from envoy.service.status.v3 import csds_pb2, csds_pb2_grpc

from service.notices import ChangeNotice, get_bus
from service.xds.load import Locality, read_load
from service.xds.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE, Snapshot
from tests.service.xds.conftest import eventually, node, sotw_request
from tests.service.xds.resources import cluster, endpoints, mesh_snapshot

pytestmark = pytest.mark.django_db(transaction=True)


def names(response):
    found = []
    for any_ in response.resources:
        message = cluster_pb2.Cluster() if any_.type_url == CLUSTER else None
        if message is None:
            found.append(any_.type_url)
            continue
        any_.Unpack(message)
        found.append(message.name)
    return found


def proxy_xds(api, name="n1"):
    response = api.get(f"/api/v1/proxies/{name}")
    if response.status_code != 200:
        return None
    return response.json(), {status["type"]: status for status in response.json()["xds"]}


def announce(tenant="acme", mesh="m1", revision=2):
    get_bus().publish(ChangeNotice(tenant=tenant, mesh=mesh, revision=revision, kinds=("endpoint-groups",)))


def test_sotw_fetch_ack_and_nack_are_recorded_and_shown_on_the_proxies_api(api, token, replica, channels, streams):
    stream = streams(channels(replica), token)
    stream.send(sotw_request(CLUSTER, node()))
    clusters = stream.recv()
    assert clusters.type_url == CLUSTER and names(clusters) == ["a-svc"]
    stream.send(sotw_request(CLUSTER, version=clusters.version_info, nonce=clusters.nonce))
    stream.send(sotw_request(LISTENER))
    listeners = stream.recv()
    assert len(listeners.resources) == 1  # the outbound listener, not the gRPC API listener
    stream.send(sotw_request(LISTENER, nonce=listeners.nonce, error="listener a-outbound: address in use"))

    def recorded():
        found = proxy_xds(api)
        assert found and "Listener" in found[1] and found[1]["Listener"]["nack"] and found[1]["Cluster"]["version_acked"]
        return found

    proxy, by_type = eventually(recorded)
    assert proxy["node_id"] == "tenants/acme/meshes/m1/nodes/n1"
    assert proxy["mesh"] == "m1" and proxy["kind"] == "envoy" and proxy["user_agent"] == "envoy 1.40.0"
    assert proxy["locality"] == {"cloud": "aws", "region": "us-east-1", "zone": "us-east-1a"}
    assert proxy["replica"] == "r1" and proxy["connected"] is True
    assert by_type["Cluster"]["version_sent"] == by_type["Cluster"]["version_acked"] == clusters.version_info
    assert by_type["Cluster"]["nack"] is None
    assert by_type["Listener"]["version_sent"] == listeners.version_info
    assert by_type["Listener"]["version_acked"] == ""
    assert by_type["Listener"]["nack"]["message"] == "listener a-outbound: address in use"
    assert by_type["Listener"]["nack"]["nonce"] == listeners.nonce

    listing = api.get("/api/v1/proxies?mesh=m1").json()["results"]
    assert [p["name"] for p in listing] == ["n1"]
    assert api.get("/api/v1/proxies?mesh=other").json()["results"] == []

    stream.close()
    eventually(lambda: api.get("/api/v1/proxies/n1").json()["connected"] is False)


def test_a_change_notice_is_pushed_to_the_stream(api, token, hand, replica, channels, streams):
    stream = streams(channels(replica), token)
    stream.send(sotw_request(CLUSTER, node()))
    first = stream.recv()
    stream.send(sotw_request(CLUSTER, version=first.version_info, nonce=first.nonce))
    stream.send(sotw_request(ENDPOINT, names=["a-svc"]))
    stream.recv()
    hand.snapshots[("acme", "m1")] = Snapshot.of([cluster("a-svc"), cluster("b-svc"), endpoints("a-svc", 8080)])
    announce()
    pushed = stream.recv()
    assert pushed.type_url == CLUSTER and sorted(names(pushed)) == ["a-svc", "b-svc"]
    assert pushed.version_info != first.version_info
    stream.nothing_within(0.3)  # the endpoints it watches did not change


def test_delta_subscribe_unsubscribe_and_removal(api, token, hand, replica, channels, streams):
    stream = streams(channels(replica), token, delta=True)
    stream.send(discovery_pb2.DeltaDiscoveryRequest(type_url=CLUSTER, node=node()))
    first = stream.recv()
    assert [r.name for r in first.resources] == ["a-svc"] and first.type_url == CLUSTER
    stream.send(discovery_pb2.DeltaDiscoveryRequest(type_url=CLUSTER, response_nonce=first.nonce))
    stream.send(discovery_pb2.DeltaDiscoveryRequest(type_url=ENDPOINT, resource_names_subscribe=["a-svc", "b-svc"]))
    eds = stream.recv()
    assert [r.name for r in eds.resources] == ["a-svc"] and list(eds.removed_resources) == ["b-svc"]
    # Subscribing to a missing name in the same request gets an answer, so the test knows the
    # unsubscribe was applied before the change below (else a push may cross it, as the protocol allows).
    stream.send(discovery_pb2.DeltaDiscoveryRequest(type_url=ENDPOINT, response_nonce=eds.nonce,
                                                    resource_names_unsubscribe=["a-svc"],
                                                    resource_names_subscribe=["c-svc"]))
    answer = stream.recv()
    assert list(answer.resources) == [] and list(answer.removed_resources) == ["c-svc"]
    stream.send(discovery_pb2.DeltaDiscoveryRequest(type_url=ENDPOINT, response_nonce=answer.nonce))
    hand.snapshots[("acme", "m1")] = Snapshot.of([cluster("b-svc"), endpoints("a-svc", 9999), endpoints("b-svc", 1)])
    announce()
    updates = {}
    for _ in range(2):
        response = stream.recv()
        updates[response.type_url] = response
    assert [r.name for r in updates[CLUSTER].resources] == ["b-svc"]
    assert list(updates[CLUSTER].removed_resources) == ["a-svc"]
    # a-svc's endpoints changed but were unsubscribed; b-svc was subscribed all along and now exists.
    assert [r.name for r in updates[ENDPOINT].resources] == ["b-svc"]
    assert list(updates[ENDPOINT].removed_resources) == []


def expect_refusal(stream, code):
    with pytest.raises(grpc.RpcError) as refused:
        stream.recv()
    assert refused.value.code() == code
    return refused.value.details()


def test_no_token_or_a_bad_one_is_unauthenticated(api, token, replica, channels, streams):
    channel = channels(replica)
    assert "no node token" in expect_refusal(
        streams(channel).send(sotw_request(CLUSTER, node())), grpc.StatusCode.UNAUTHENTICATED)
    bad = token[:-4] + ("aaaa" if not token.endswith("aaaa") else "bbbb")
    assert "unknown or has been revoked" in expect_refusal(
        streams(channel, bad).send(sotw_request(CLUSTER, node())), grpc.StatusCode.UNAUTHENTICATED)
    expect_refusal(streams(channel, "not-a-token", delta=True).send(discovery_pb2.DeltaDiscoveryRequest(
        type_url=CLUSTER, node=node())), grpc.StatusCode.UNAUTHENTICATED)
    revoked = api.post("/api/v1/node-tokens", {"name": "revoked", "mesh": "m1"}, format="json").json()["token"]
    assert api.delete("/api/v1/node-tokens/revoked").status_code == 204
    expect_refusal(streams(channel, revoked).send(sotw_request(CLUSTER, node())), grpc.StatusCode.UNAUTHENTICATED)
    # None of these reached a snapshot or left a proxy record.
    assert api.get("/api/v1/proxies").json()["results"] == []


def test_a_token_in_the_node_metadata_is_accepted_for_grpc_clients(api, token, replica, channels, streams):
    stream = streams(channels(replica))
    grpc_node = node(agent="gRPC Python", token=token)
    stream.send(sotw_request(LISTENER, grpc_node, names=["xds:///a.example"]))
    response = stream.recv()
    assert response.type_url == LISTENER and len(response.resources) == 1
    proxy = eventually(lambda: proxy_xds(api))[0]
    assert proxy["kind"] == "grpc"


def test_another_tenants_node_id_or_resource_names_get_nothing_of_it(
        api, other_api, token, hand, replica, channels, streams):
    assert other_api.post("/api/v1/meshes", {"name": "m1"}, format="json").status_code == 201
    hand.snapshots[("globex", "m1")] = mesh_snapshot("secret")
    channel = channels(replica)
    message = expect_refusal(streams(channel, token).send(sotw_request(CLUSTER, node(tenant="globex"))),
                             grpc.StatusCode.PERMISSION_DENIED)
    assert "outside the node token's mesh tenants/acme/meshes/m1" in message
    expect_refusal(streams(channel, token).send(sotw_request(CLUSTER, node(mesh="m2"))),
                   grpc.StatusCode.PERMISSION_DENIED)
    # Naming globex's resources from acme's own node id yields acme's mesh only.
    stream = streams(channel, token)
    stream.send(sotw_request(ROUTE, node(), names=["secret-routes", "a-routes"]))
    routes = stream.recv()
    assert len(routes.resources) == 1 and b"secret" not in routes.SerializeToString()
    assert other_api.get("/api/v1/proxies").json()["results"] == []
    assert other_api.get("/api/v1/proxies/n1").status_code == 404


def test_a_notice_on_redis_reaches_two_replicas_and_a_late_replica_serves_the_latest(
        api, token, hand, start_replica, channels, streams):
    replicas = [start_replica("r1"), start_replica("r2")]
    opened = []
    for index, replica in enumerate(replicas):
        stream = streams(channels(replica), token)
        stream.send(sotw_request(CLUSTER, node(f"n{index}")))
        first = stream.recv()
        stream.send(sotw_request(CLUSTER, version=first.version_info, nonce=first.nonce))
        opened.append(stream)
    hand.snapshots[("acme", "m1")] = Snapshot.of([cluster("a-svc"), cluster("c-svc")])
    announce()
    for stream in opened:
        assert sorted(names(stream.recv())) == ["a-svc", "c-svc"]
    late = streams(channels(start_replica("r3")), token)
    late.send(sotw_request(CLUSTER, node("late")))
    assert sorted(names(late.recv())) == ["a-svc", "c-svc"]
    by_replica = eventually(lambda: {p["name"]: p["replica"] for p in api.get("/api/v1/proxies").json()["results"]
                                     if p["connected"]} == {"n0": "r1", "n1": "r2", "late": "r3"})
    assert by_replica


def test_csds_answers_each_tenant_about_its_own_proxies(api, other_api, token, replica, channels, streams):
    stream = streams(channels(replica), token)
    stream.send(sotw_request(CLUSTER, node()))
    clusters = stream.recv()
    stream.send(sotw_request(CLUSTER, version=clusters.version_info, nonce=clusters.nonce))
    stream.send(sotw_request(LISTENER))
    listeners = stream.recv()
    stream.send(sotw_request(LISTENER, nonce=listeners.nonce, error="bad listener"))
    csds = csds_pb2_grpc.ClientStatusDiscoveryServiceStub(channels(replica))
    auth = (("authorization", f"Bearer {api.key}"),)

    def answered():
        response = csds.FetchClientStatus(csds_pb2.ClientStatusRequest(), metadata=auth)
        assert len(response.config) == 1 and len(response.config[0].generic_xds_configs) == 2
        configs = {c.type_url: c for c in response.config[0].generic_xds_configs}
        assert configs[LISTENER].error_state.details
        return response.config[0], configs

    config, configs = eventually(answered)
    assert config.node.id == "tenants/acme/meshes/m1/nodes/n1"
    assert configs[CLUSTER].version_info == clusters.version_info
    assert configs[CLUSTER].config_status == csds_pb2.SYNCED
    assert configs[LISTENER].config_status == csds_pb2.ERROR
    assert configs[LISTENER].error_state.details == "bad listener"
    other = csds.FetchClientStatus(csds_pb2.ClientStatusRequest(),
                                   metadata=(("authorization", f"Bearer {other_api.key}"),))
    assert list(other.config) == []
    matcher = csds_pb2.ClientStatusRequest()
    matcher.node_matchers.add().node_id.prefix = "tenants/acme/meshes/m1/nodes/x"
    assert list(csds.FetchClientStatus(matcher, metadata=auth).config) == []
    streamed = next(csds.StreamClientStatus(iter([csds_pb2.ClientStatusRequest()]), metadata=auth))
    assert [c.node.id for c in streamed.config] == [config.node.id]
    with pytest.raises(grpc.RpcError) as refused:
        csds.FetchClientStatus(csds_pb2.ClientStatusRequest())
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as refused:
        csds.FetchClientStatus(csds_pb2.ClientStatusRequest(), metadata=(("authorization", f"Bearer {token}"),))
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_lrs_reports_are_kept_for_the_autoscaler(api, token, replica, channels):
    lrs = lrs_pb2_grpc.LoadReportingServiceStub(channels(replica))
    report = lrs_pb2.LoadStatsRequest(node=node())
    stats = report.cluster_stats.add(cluster_name="a-svc")
    stats.load_report_interval.seconds = 10
    upstream = stats.upstream_locality_stats.add(total_issued_requests=500, total_error_requests=20,
                                                 total_successful_requests=480, total_requests_in_progress=3)
    upstream.locality.region, upstream.locality.zone = "us-east-1", "us-east-1a"
    sent = iter([report])
    replies = lrs.StreamLoadStats(sent, metadata=(("authorization", f"Bearer {token}"),))
    reply = next(replies)
    assert reply.send_all_clusters and reply.load_reporting_interval.seconds == 10
    load = eventually(lambda: read_load("acme", "m1"))
    assert [(c.cluster, c.locality, c.rate, c.errors, c.in_progress, c.proxies) for c in load] == [
        ("a-svc", Locality("us-east-1", "us-east-1a"), 50.0, 2.0, 3, 1)]
    denied = lrs.StreamLoadStats(iter([lrs_pb2.LoadStatsRequest(node=node())]))
    with pytest.raises(grpc.RpcError) as refused:
        next(denied)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_replica_whose_notice_connection_drops_catches_up_when_it_reconnects(
        api, token, hand, replica, channels, streams, settings):
    import redis

    stream = streams(channels(replica), token)
    stream.send(sotw_request(CLUSTER, node()))
    first = stream.recv()
    stream.send(sotw_request(CLUSTER, version=first.version_info, nonce=first.nonce))
    # A change whose notice this replica misses: its subscriber connection is
    # killed (this test's Redis database only holds this process's connections).
    hand.snapshots[("acme", "m1")] = Snapshot.of([cluster("a-svc"), cluster("missed-svc")])
    server = redis.Redis.from_url(settings.REDIS_URL)
    db = server.connection_pool.connection_kwargs.get("db", 0)
    subscribers = [c["id"] for c in server.client_list() if int(c["db"]) == db and int(c["sub"]) > 0]
    assert subscribers
    for client_id in subscribers:
        server.client_kill_filter(_id=client_id)
    caught_up = stream.recv(timeout=20)
    assert sorted(names(caught_up)) == ["a-svc", "missed-svc"]
