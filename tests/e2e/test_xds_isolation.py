"""What a proxy can and cannot get, seen from the outside: a node token never
yields another tenant's configuration, and a NACK shows on the proxies API
with its message without touching the other proxies of the mesh."""
import grpc
import pytest
from envoy.service.discovery.v3 import ads_pb2_grpc

from client.bootstrap import XDS_CLUSTER
from tests.e2e.support import (
    create, endpoint_group, proxy_status, send, service, to, try_send, wait_for,
)
from tests.service.test_cli import free_port
from tests.service.xds.conftest import Stream, node, sotw_request

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"


def one_route(api, mesh: str, backend, host: str):
    create(api, "endpoint-groups", endpoint_group(backend.name, backend))
    create(api, "backend-services", service(backend.name, mesh, backend.name))
    create(api, "http-routes", {"name": backend.name, "meshes": [mesh], "hostnames": [host],
                                "rules": [{"action": to(backend.name)}]})


def stat(proxy, name: str) -> int:
    status, body = proxy.admin_get(f"/stats?filter=^{name}$")
    assert status == 200 and body.strip(), (name, body)
    return int(body.split(":")[1])


def dynamic_config(proxy) -> list[str]:
    """Names of the clusters and listeners Envoy got over xDS."""
    status, body = proxy.admin_get("/config_dump?resource=dynamic_active_clusters")
    assert status == 200, body
    names = [line for line in body.splitlines() if '"name"' in line]
    status, body = proxy.admin_get("/config_dump?resource=dynamic_listeners")
    assert status == 200, body
    return names + [line for line in body.splitlines() if '"name"' in line]


def test_a_node_token_of_tenant_a_with_a_node_id_of_tenant_b_gets_nothing_of_b(
        api, other_api, token, node_token, replica, start_envoy, http_backend):
    # Tenant globex has a mesh of the same name, on its own port, with a route to its own backend.
    secret = http_backend("globex-secret")
    globex_port = free_port()
    create(other_api, "meshes", {"name": "e2e", "interception_port": globex_port})
    one_route(other_api, "e2e", secret, "secret.test")

    spy = start_envoy(replica, token, node="spy", tenant="globex")  # acme's token, globex's node id
    refused = f"config stream to {XDS_CLUSTER} closed: 7, node id 'tenants/globex/meshes/e2e/nodes/spy'"
    wait_for(lambda: spy.log().count(refused) >= 2, timeout=10, what="the spy's streams refused (PERMISSION_DENIED)")
    assert stat(spy, "control_plane.connected_state") == 0
    assert dynamic_config(spy) == []
    assert spy.admin_get("/ready")[0] == 503  # still waiting for a first configuration
    assert try_send(globex_port, "secret.test") is None  # no listener
    assert len(secret.requests) == 0
    assert other_api.get("/api/v1/proxies").json()["results"] == []
    assert api.get("/api/v1/proxies").json()["results"] == []

    # The same setup with globex's own token gets globex's configuration: the
    # refusal above is the token's doing, not a broken setup.
    start_envoy(replica, node_token(other_api, "e2e"), node="legit", tenant="globex")
    wait_for(lambda: (answer := try_send(globex_port, "secret.test")) and answer.backend == "globex-secret",
             timeout=20, what="globex's own proxy served")
    assert dynamic_config(spy) == []


def test_a_nack_shows_on_the_proxies_api_and_leaves_other_proxies_alone(api, mesh, token, replica, start_envoy,
                                                                        http_backend):
    one_route(api, mesh.name, http_backend("web"), "web.test")
    start_envoy(replica, token, node="sidecar")
    wait_for(lambda: (answer := try_send(mesh.port, "web.test")) and answer.backend == "web", timeout=20,
             what="Envoy serving")

    def sidecar_synced():
        status = proxy_status(api, "sidecar", mesh.name)
        ok = len(status) == 4 and all(s["nack"] is None and s["version_acked"] == s["version_sent"]
                                      for s in status.values())
        return ok and status

    before = wait_for(sidecar_synced, timeout=5, what="the sidecar's ACKs recorded")

    # Translation is validated so that Envoy accepts it; a raw client NACKs what it is sent.
    message = "raw client: cluster web rejected (a test of NACK reporting)"
    with grpc.insecure_channel(f"127.0.0.1:{replica.port}") as channel:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        raw = Stream(stub.StreamAggregatedResources, metadata=(("authorization", f"Bearer {token}"),))
        try:
            raw.send(sotw_request(CLUSTER, node(name="raw", tenant="acme", mesh=mesh.name)))
            response = raw.recv()
            assert [r.type_url for r in response.resources] == [CLUSTER]
            raw.send(sotw_request(CLUSTER, nonce=response.nonce, error=message))
            nack = wait_for(lambda: proxy_status(api, "raw", mesh.name)["Cluster"]["nack"], timeout=5,
                            what="the NACK on the proxies API")
        finally:
            raw.close()
    assert nack["message"] == message
    assert nack["nonce"] == response.nonce
    raw_cluster = proxy_status(api, "raw", mesh.name)["Cluster"]
    assert raw_cluster["version_sent"] == response.version_info and raw_cluster["version_acked"] == ""

    assert proxy_status(api, "sidecar", mesh.name) == before
    assert send(mesh.port, "web.test").backend == "web"
