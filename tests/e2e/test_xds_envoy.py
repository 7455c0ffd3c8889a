"""The real Envoy against a real replica: the bootstrap `interlock-bootstrap`
writes, the demo policy translated, every type ACKed (SotW and delta), and an
endpoint attached through the API reaching Envoy's clusters."""
import json

import pytest

from client import envoy
from client.bootstrap import BootstrapOptions, envoy_bootstrap
from service.dev import demo_policy
from service.xds.replica import ReplicaConfig, ReplicaThread
from tests.service.test_cli import free_port
from tests.service.xds.conftest import eventually

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TYPES = {"Cluster", "ClusterLoadAssignment", "Listener", "RouteConfiguration"}


@pytest.fixture
def replica():
    thread = ReplicaThread(ReplicaConfig(port=0, replica="e2e"))
    yield thread.start()
    thread.stop()


@pytest.fixture
def token(api):
    for collection, body in demo_policy():
        if collection == "meshes":
            body = {**body, "interception_port": free_port()}  # Envoy binds it
        assert api.post(f"/api/v1/{collection}", body, format="json").status_code == 201
    return api.post("/api/v1/node-tokens", {"name": "e2e", "mesh": "demo"}, format="json").json()["token"]


def synced(api):
    """The proxy's per-type status once Envoy has ACKed every type it was sent."""
    response = api.get("/api/v1/proxies/sidecar")
    assert response.status_code == 200
    status = {s["type"]: s for s in response.json()["xds"]}
    assert set(status) == TYPES, status
    for entry in status.values():
        assert entry["nack"] is None, entry
        assert entry["version_acked"] == entry["version_sent"] != "", entry
    return status


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_envoy_acks_the_demo_mesh_and_gets_an_attached_endpoint(api, token, replica, tmp_path, delta):
    options = BootstrapOptions(server=f"127.0.0.1:{replica.port}", tenant="acme", mesh="demo", node="sidecar",
                               token=token, cloud="aws", region="us-east-1", zone="us-east-1a", delta=delta,
                               admin_port=0)
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(envoy_bootstrap(options)))
    with envoy.start(path) as proxy:
        try:
            before = eventually(lambda: synced(api), timeout=30)
            attached = api.post("/api/v1/endpoint-groups/shop-v1-east/attach",
                                {"endpoints": [{"address": "127.0.0.21", "port": 8080}]}, format="json")
            assert attached.status_code == 200, attached.json()
            after = eventually(lambda: (s := synced(api))["ClusterLoadAssignment"]["version_acked"]
                               != before["ClusterLoadAssignment"]["version_acked"] and s, timeout=30)
            assert after["Cluster"]["version_acked"] == before["Cluster"]["version_acked"]
            eventually(lambda: "shop-v1::127.0.0.21:8080" in proxy.admin_get("/clusters")[1], timeout=10)
        except AssertionError:
            print(proxy.log())
            raise
