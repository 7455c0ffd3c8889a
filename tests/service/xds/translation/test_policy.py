"""load_policy on real Postgres: what it reads, whose, and in what shape."""
import pytest

from service.xds.policy import EMPTY, BackendPolicy, EndpointPolicy, Locality, load_policy
from tests.service.xds.translation.meshes import group, post


def small_mesh(api, mesh="m1", address="10.0.0.1"):
    post(api, "meshes", {"name": mesh, "interception_port": 15006})
    post(api, "endpoint-groups", group(f"{mesh}-a", "aws", "us-east-1", "us-east-1a", address, "10.0.0.0",
                                       capacity_scaler=0.5))
    post(api, "endpoint-groups", group(f"{mesh}-b", "gcp", "europe-west1", "b", "10.1.0.1"))
    post(api, "backend-services", {"name": f"{mesh}-web", "mesh": mesh, "circuit_breakers": {"max_requests": 5},
                                   "backends": [{"endpoint_group": f"{mesh}-b", "preference": "PREFERRED"},
                                                {"endpoint_group": f"{mesh}-a", "capacity_scaler": 0.5}]})
    post(api, "backend-services", {"name": f"{mesh}-api", "mesh": mesh})
    post(api, "http-routes", {"name": f"{mesh}-r", "meshes": [mesh], "hostnames": [f"{mesh}.example.com"],
                              "rules": [{"action": {"destinations": [{"service_name": f"{mesh}-web"}]}}]})


@pytest.mark.django_db
def test_reads_the_mesh_as_frozen_values(api):
    small_mesh(api)
    policy = load_policy("acme", "m1")
    assert (policy.tenant, policy.mesh, policy.interception_port) == ("acme", "m1", 15006)
    assert policy.revision == api.get("/api/v1/meshes/m1").json()["revision"]
    assert [s.name for s in policy.services] == ["m1-api", "m1-web"]  # by name
    web = policy.services[1]
    assert web.circuit_breakers == {"max_requests": 5}
    with pytest.raises(TypeError):
        web.circuit_breakers["max_requests"] = 6
    # Backends in the order the service lists them, endpoints by address.
    assert web.backends == (
        BackendPolicy("m1-b", Locality("gcp", "europe-west1", "b"), (EndpointPolicy("10.1.0.1", 8080),),
                      capacity=1.0, preference="PREFERRED"),
        BackendPolicy("m1-a", Locality("aws", "us-east-1", "us-east-1a"),
                      (EndpointPolicy("10.0.0.0", 8080), EndpointPolicy("10.0.0.1", 8080)), capacity=0.25),
    )
    assert web.backends[1].endpoints[0].metadata is EMPTY and web.backends[1].endpoints[0].health == "UNKNOWN"
    route = policy.routes[0]
    assert (route.kind, route.name, route.hostnames) == ("http-routes", "m1-r", ("m1.example.com",))
    assert isinstance(route.rules, tuple) and route.rules[0]["action"]["destinations"][0]["service_name"] == "m1-web"


@pytest.mark.django_db
def test_only_that_mesh_of_that_tenant(api, other_api):
    small_mesh(api)
    small_mesh(api, mesh="m2", address="10.0.0.2")
    small_mesh(other_api, address="10.9.9.9")
    policy = load_policy("acme", "m1")
    assert {s.name for s in policy.services} == {"m1-api", "m1-web"}
    assert [r.name for r in policy.routes] == ["m1-r"]
    addresses = {e.address for s in policy.services for b in s.backends for e in b.endpoints}
    assert "10.9.9.9" not in addresses and "10.0.0.2" not in addresses
    assert load_policy("globex", "m1").services[1].backends[1].endpoints[1].address == "10.9.9.9"


@pytest.mark.django_db
def test_a_mesh_that_is_not_there_is_none(api):
    assert load_policy("acme", "nope") is None
    assert load_policy("no-such-tenant", "m1") is None
    small_mesh(api)
    for route in ("m1-r",):
        assert api.delete(f"/api/v1/http-routes/{route}").status_code == 204
    for service in ("m1-web", "m1-api"):
        assert api.delete(f"/api/v1/backend-services/{service}").status_code == 204
    assert api.delete("/api/v1/meshes/m1").status_code == 204
    assert load_policy("acme", "m1") is None


@pytest.mark.django_db(transaction=True)
def test_reads_in_one_transaction_of_its_own(api):
    """Outside any transaction (as the xDS server calls it) load_policy opens
    a repeatable-read one, so its several queries see one state."""
    small_mesh(api)
    policy = load_policy("acme", "m1")
    assert [s.name for s in policy.services] == ["m1-api", "m1-web"]
    assert load_policy("acme", "m1") == policy
