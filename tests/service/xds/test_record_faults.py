"""What one proxy sends can never stop the proxy records of another (issue 12,
finding 1): a real replica, real gRPC streams, Postgres, and the proxies API of
another tenant whose proxy connects after the hostile one."""
import grpc
import pytest

from service.xds.snapshot import CLUSTER, LISTENER
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
    eventually(lambda: replica.recorder.dropped == 1)  # refused once, then no longer recorded
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
    long_type = "type.googleapis.com/" + "x" * 300
    stream.send(sotw_request(long_type))
    eventually(lambda: connected(api, "n1"))
    control_proxy_is_recorded(other_api, control, replica, channels, streams)
    stream.close()
    eventually(lambda: api.get("/api/v1/proxies/n1").json()["connected"] is False)
    type_urls = [s["type_url"] for s in api.get("/api/v1/proxies/n1").json()["xds"]]
    assert all(len(url) <= 255 for url in type_urls)


def test_a_nul_byte_and_a_huge_nack_message_are_cleaned_and_bounded(
        api, token, other_api, control, replica, channels, streams):
    stream = streams(channels(replica), token)
    stream.send(sotw_request(CLUSTER, node()))
    clusters = stream.recv()
    stream.send(sotw_request(CLUSTER, version=clusters.version_info, nonce=clusters.nonce))
    stream.send(sotw_request(LISTENER))
    listeners = stream.recv()
    message = "listener a\x00b: bad\nline two" + "x" * 100_000
    stream.send(sotw_request(LISTENER, version="v" * 300, nonce=listeners.nonce, error=message))

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
