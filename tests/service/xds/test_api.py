"""The read-only proxies API over records written as the recorder writes them."""
import pytest

from service.mesh.models import Mesh
from service.xds.auth import Credential, NodeIdentity
from service.xds.protocol import Ack, Nack, Outgoing
from service.xds.records import ProxyRecord, write
from service.xds.snapshot import CLUSTER, LISTENER

pytestmark = pytest.mark.django_db


def write_records(records):
    """What the recorder does with a batch, here and now."""
    pks = write([r.take_changes() for r in records])
    for record_ in records:
        record_.pk = pks.get(record_.stream, record_.pk)


def record(tenant, mesh, name, region="us-east-1"):
    mesh_row = Mesh.objects.get(tenant=tenant, name=mesh)
    credential = Credential(tenant.name, tenant.pk, mesh, mesh_row.pk)
    identity = NodeIdentity(credential, f"tenants/{tenant.name}/meshes/{mesh}/nodes/{name}", name)
    return ProxyRecord(identity, "r1", "envoy", "envoy 1.40.0", "aws", region, f"{region}a")


@pytest.fixture
def meshes(api, other_api):
    for client in (api, other_api):
        for name in ("m1", "m2"):
            assert client.post("/api/v1/meshes", {"name": name}, format="json").status_code == 201


def test_a_proxy_shows_per_type_versions_and_its_nack(api, meshes):
    proxy = record(api.tenant, "m1", "n1")
    proxy.sent(Outgoing(CLUSTER, "v1", "1", b"", 1))
    proxy.answered(Ack(CLUSTER, "v1", "1"))
    proxy.sent(Outgoing(LISTENER, "v2", "2", b"", 1))
    proxy.answered(Nack(LISTENER, "", "2", "port 80 in use"))
    write_records([proxy])
    body = api.get("/api/v1/proxies/n1").json()
    assert body["connected"] and body["replica"] == "r1" and body["mesh"] == "m1"
    cluster, listener = body["xds"]
    assert (cluster["type"], cluster["version_sent"], cluster["version_acked"], cluster["nack"]) == \
        ("Cluster", "v1", "v1", None)
    assert (listener["type"], listener["version_sent"], listener["version_acked"]) == ("Listener", "v2", "")
    assert listener["nack"]["message"] == "port 80 in use" and listener["nack"]["nonce"] == "2"
    # An ACK after the NACK clears it.
    proxy.sent(Outgoing(LISTENER, "v3", "3", b"", 1))
    proxy.answered(Ack(LISTENER, "v3", "3"))
    write_records([proxy])
    listener = api.get("/api/v1/proxies/n1").json()["xds"][1]
    assert listener["version_acked"] == "v3" and listener["nack"] is None


def test_filters_by_mesh_and_connection_and_names_are_per_mesh(api, meshes):
    first, second, other = record(api.tenant, "m1", "n1"), record(api.tenant, "m2", "n1"), record(api.tenant, "m2", "n2")
    write_records([first, second, other])
    other.closed()
    write_records([other])
    listed = api.get("/api/v1/proxies").json()["results"]
    assert [(p["mesh"], p["name"], p["connected"]) for p in listed] == [
        ("m1", "n1", True), ("m2", "n1", True), ("m2", "n2", False)]
    assert [p["mesh"] for p in api.get("/api/v1/proxies?mesh=m2&connected=true").json()["results"]] == ["m2"]
    assert api.get("/api/v1/proxies?mesh=no%00pe").json()["results"] == []
    ambiguous = api.get("/api/v1/proxies/n1")
    assert ambiguous.status_code == 409 and "?mesh=" in ambiguous.json()["message"]
    assert api.get("/api/v1/proxies/n1?mesh=m2").json()["node_id"] == "tenants/acme/meshes/m2/nodes/n1"


def test_a_late_close_of_an_old_stream_does_not_disconnect_a_reconnected_proxy(api, meshes):
    old = record(api.tenant, "m1", "n1")
    write_records([old])
    new = record(api.tenant, "m1", "n1")
    write_records([new])
    old.closed()
    write_records([old])
    assert api.get("/api/v1/proxies/n1").json()["connected"] is True


def test_another_tenants_proxies_are_404_and_never_listed(api, other_api, meshes):
    write_records([record(other_api.tenant, "m1", "secret")])
    assert api.get("/api/v1/proxies/secret").status_code == 404
    assert api.get("/api/v1/proxies").json()["results"] == []
    assert other_api.get("/api/v1/proxies/secret").status_code == 200


def test_proxies_are_read_only_and_counted_in_the_tenants_usage(api, meshes):
    write_records([record(api.tenant, "m1", "n1")])
    assert api.post("/api/v1/proxies", {"name": "x"}, format="json").status_code == 405
    assert api.delete("/api/v1/proxies/n1").status_code == 405
    assert api.patch("/api/v1/proxies/n1", {}, format="json").status_code == 405
    assert api.get("/api/v1/tenant").json()["usage"]["proxies"] == 1


def test_reading_proxies_needs_a_key():
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/proxies").status_code == 401

