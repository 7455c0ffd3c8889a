"""What one proxy sends can never stop the proxy records of another (issue 12,
finding 1): a real replica, real gRPC streams, Postgres, and the proxies API of
another tenant whose proxy connects after the hostile one."""
import threading

import grpc
import pytest
from django.db import connection
from django.db.models.signals import post_delete
from django.utils import timezone

from service.mesh.models import Mesh
from service.xds.models import Proxy, ProxyTypeStatus
from service.xds.snapshot import CLUSTER, LISTENER
from service.xds.untrusted import LOG_EXCERPT, PROXY_LOG_LINES
from tests.service.xds.conftest import eventually, node, sotw_request
from tests.service.xds.resources import mesh_snapshot

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def control(other_api, hand):
    """Another tenant's mesh and node token: its proxy is the one that must keep being recorded."""
    assert other_api.post("/api/v1/meshes", {"name": "m1"}, format="json").status_code == 201
    hand.snapshots[("globex", "m1")] = mesh_snapshot("g")
    return other_api.post("/api/v1/node-tokens", {"name": "t", "mesh": "m1"}, format="json").json()["token"]


def connected(api, name):
    response = api.get(f"/api/v1/proxies/{name}")
    return response.status_code == 200 and response.json()["connected"]


def control_proxy_is_recorded(other_api, control, replica, channels, streams, name="ctl"):
    """A proxy of the other tenant connects, is listed as connected, disconnects, is listed as disconnected."""
    stream = streams(channels(replica), control)
    stream.send(sotw_request(CLUSTER, node(name, tenant="globex")))
    clusters = stream.recv()
    stream.send(sotw_request(CLUSTER, version=clusters.version_info, nonce=clusters.nonce))
    eventually(lambda: connected(other_api, name))
    listed = other_api.get("/api/v1/proxies?connected=true").json()["results"]
    assert name in [p["name"] for p in listed]
    stream.close()
    eventually(lambda: other_api.get(f"/api/v1/proxies/{name}").json()["connected"] is False)


def refusal(stream):
    with pytest.raises(grpc.RpcError) as refused:
        stream.recv()
    return refused.value.code(), refused.value.details()


def test_a_600_character_node_name_is_refused_and_others_are_still_recorded(
        api, token, other_api, control, replica, channels, streams):
    long_name = "n" * 600
    code, details = refusal(streams(channels(replica), token).send(sotw_request(CLUSTER, node(long_name))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "600 characters" in details and "at most 255" in details and len(details) < 400
    control_proxy_is_recorded(other_api, control, replica, channels, streams)
    assert api.get("/api/v1/proxies").json()["results"] == []


def test_a_nul_byte_in_a_node_name_is_refused_and_others_are_still_recorded(
        api, token, other_api, control, replica, channels, streams):
    code, details = refusal(streams(channels(replica), token).send(sotw_request(CLUSTER, node("bad\x00name"))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "control character" in details
    control_proxy_is_recorded(other_api, control, replica, channels, streams)


def test_a_300_character_type_url_does_not_stop_the_records(
        api, token, other_api, control, replica, channels, streams):
    stream = streams(channels(replica), token)
    stream.send(sotw_request(CLUSTER, node()))
    clusters = stream.recv()
    stream.send(sotw_request(CLUSTER, version=clusters.version_info, nonce=clusters.nonce))
    # An ACK of a version of its own, longer than the column (but within the
    # stream limits), then a type URL the stream limits refuse (ending the stream).
    stream.send(sotw_request(CLUSTER, version="v" * 200, nonce=clusters.nonce))
    stream.send(sotw_request("type.googleapis.com/" + "x" * 300))
    eventually(lambda: api.get("/api/v1/proxies/n1").status_code == 200)
    control_proxy_is_recorded(other_api, control, replica, channels, streams)
    stream.close()
    eventually(lambda: api.get("/api/v1/proxies/n1").json()["connected"] is False)
    statuses = api.get("/api/v1/proxies/n1").json()["xds"]
    assert all(len(status["type_url"]) <= 255 for status in statuses)
    assert [len(s["version_acked"]) for s in statuses if s["type"] == "Cluster"] == [64]


def test_a_nul_byte_and_a_huge_nack_message_are_cleaned_and_bounded(
        api, token, other_api, control, replica, channels, streams):
    stream = streams(channels(replica), token)
    stream.send(sotw_request(CLUSTER, node()))
    clusters = stream.recv()
    stream.send(sotw_request(CLUSTER, version=clusters.version_info, nonce=clusters.nonce))
    stream.send(sotw_request(LISTENER))
    listeners = stream.recv()
    message = "listener a\x00b: bad\nline two" + "x" * 100_000
    stream.send(sotw_request(LISTENER, version="v" * 200, nonce=listeners.nonce, error=message))

    def nacked():
        response = api.get("/api/v1/proxies/n1")
        assert response.status_code == 200
        statuses = {s["type"]: s for s in response.json()["xds"]}
        assert "Listener" in statuses and statuses["Listener"]["nack"]
        return statuses["Listener"]["nack"]["message"]

    stored = eventually(nacked)
    assert stored.startswith("listener a\ufffdb: bad\nline two") and "\x00" not in stored
    assert len(stored) <= 4096
    control_proxy_is_recorded(other_api, control, replica, channels, streams)


def test_deleting_a_connected_proxys_token_then_its_mesh_works_and_others_are_still_recorded(
        api, token, other_api, control, replica, channels, streams):
    stream = streams(channels(replica), token)
    stream.send(sotw_request(CLUSTER, node()))
    clusters = stream.recv()
    stream.send(sotw_request(CLUSTER, version=clusters.version_info, nonce=clusters.nonce))
    eventually(lambda: connected(api, "n1"))
    assert api.delete("/api/v1/node-tokens/tok1").status_code == 204
    assert api.delete("/api/v1/meshes/m1").status_code == 204
    assert api.get("/api/v1/proxies").json()["results"] == []
    stream.send(sotw_request(LISTENER))  # its status row would name a proxy row the mesh took with it
    stream.close()  # and so would its disconnect
    eventually(lambda: replica.recorder.dropped == 1)  # refused once, then no longer recorded
    control_proxy_is_recorded(other_api, control, replica, channels, streams)
    assert api.get("/api/v1/proxies").json()["results"] == []


def test_two_replicas_with_default_ids_keep_each_others_proxies_connected(
        api, token, start_replica, channels, streams):
    first = start_replica("")
    stream = streams(channels(first), token)
    stream.send(sotw_request(CLUSTER, node("n1")))
    stream.recv()
    eventually(lambda: connected(api, "n1"))
    second = start_replica("")  # the same host and (configured) port
    late = streams(channels(second), token)
    late.send(sotw_request(CLUSTER, node("n2")))
    late.recv()
    eventually(lambda: connected(api, "n2"))  # the second replica's recorder has run its start
    assert connected(api, "n1")
    assert api.get("/api/v1/proxies/n1").json()["replica"] == first.id
    assert second.id != first.id and second.id.startswith(first.id.rpartition("/")[0])


def test_a_nack_flood_logs_bounded_excerpts_at_most_the_budget(api, token, replica, channels, streams, caplog):
    stream = streams(channels(replica), token)
    stream.send(sotw_request(CLUSTER, node()))
    clusters = stream.recv()
    for index in range(200):  # a NACK of the last nonce, again and again
        stream.send(sotw_request(CLUSTER, nonce=clusters.nonce, error=f"nack {index}\nforged line " + "y" * 10_000))
    eventually(lambda: replica.server.callbacks.counts["nacks"] == 200)
    lines = [r.getMessage() for r in caplog.records if "NACKed" in r.getMessage()]
    assert len(lines) == PROXY_LOG_LINES
    assert all(len(line) < 2 * LOG_EXCERPT + 300 and "\n" not in line for line in lines)
    assert lines[0].startswith("tenants/acme/meshes/m1/nodes/n1 NACKed") and "nack 0\\nforged line" in lines[0]


def elsewhere(write):
    """Run ``write`` on a connection of its own and commit it, as a replica's recorder would, meanwhile."""
    failures = []

    def run():
        try:
            write()
        except Exception as error:  # reported to the test below
            failures.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(10)
    assert not thread.is_alive() and not failures, failures


def test_a_mesh_is_deleted_though_its_proxies_records_are_written_while_it_is(api, token):
    """Deleting a mesh deletes its proxy rows, then their statuses, then the mesh; a
    recorder may commit a proxy row or a status in between: those go with it too."""
    mesh = Mesh.objects.get(tenant=api.tenant, name="m1")
    proxy = Proxy.objects.create(tenant=api.tenant, mesh=mesh, name="n1", node_id="n1", kind="envoy", replica="r",
                                 stream="s1", connected_at=timezone.now(), last_seen_at=timezone.now())
    ProxyTypeStatus.objects.create(proxy=proxy, type_url=CLUSTER)

    def status_meanwhile(sender, **kwargs):
        elsewhere(lambda: ProxyTypeStatus.objects.create(proxy_id=proxy.pk, type_url=LISTENER))

    def proxy_meanwhile(sender, **kwargs):
        elsewhere(lambda: Proxy.objects.create(tenant=api.tenant, mesh_id=mesh.pk, name="n2", node_id="n2",
                                               kind="envoy", replica="r", stream="s2", connected_at=timezone.now(),
                                               last_seen_at=timezone.now()))

    assert api.delete("/api/v1/node-tokens/tok1").status_code == 204
    post_delete.connect(status_meanwhile, sender=ProxyTypeStatus, dispatch_uid="status_meanwhile")
    post_delete.connect(proxy_meanwhile, sender=Proxy, dispatch_uid="proxy_meanwhile")
    try:
        deleted = api.delete("/api/v1/meshes/m1")
    finally:
        post_delete.disconnect(sender=ProxyTypeStatus, dispatch_uid="status_meanwhile")
        post_delete.disconnect(sender=Proxy, dispatch_uid="proxy_meanwhile")
    assert deleted.status_code == 204, deleted.json()
    assert not Proxy.objects.exists() and not ProxyTypeStatus.objects.exists()
