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


# --- endpoint health: the verdicts of each service's own health check ----------------------------------------------


def verdict(tenant, check, group, address, health):
    from service.health.models import Verdict
    from service.mesh.models import Endpoint, HealthCheck

    Verdict.objects.create(tenant=tenant, health_check=HealthCheck.objects.get(tenant=tenant, name=check),
                           endpoint=Endpoint.objects.get(tenant=tenant, group__name=group, address=address),
                           health=health)


def shared_group_mesh(api, services=("one", "two", "bare")):
    """Services sharing one endpoint group, each but the last with its own health check."""
    post(api, "meshes", {"name": "m1"})
    post(api, "endpoint-groups", group("g", "aws", "us-east-1", "a", "10.0.0.1", "10.0.0.2", "10.0.0.3"))
    for name in services[:-1]:
        post(api, "health-checks", {"name": f"hc-{name}", "tcp_health_check": {"port": 8080}})
        post(api, "backend-services", {"name": name, "mesh": "m1", "health_checks": [f"hc-{name}"],
                                       "backends": [{"endpoint_group": "g"}]})
    post(api, "backend-services", {"name": services[-1], "mesh": "m1", "backends": [{"endpoint_group": "g"}]})


def healths(policy):
    return {s.name: [e.health for b in s.backends for e in b.endpoints] for s in policy.services}


@pytest.mark.django_db
def test_endpoints_carry_the_verdicts_of_their_services_own_health_check(api, tenant):
    shared_group_mesh(api)
    verdict(tenant, "hc-one", "g", "10.0.0.1", "UNHEALTHY")
    verdict(tenant, "hc-one", "g", "10.0.0.2", "HEALTHY")
    verdict(tenant, "hc-two", "g", "10.0.0.1", "HEALTHY")
    verdict(tenant, "hc-two", "g", "10.0.0.2", "UNKNOWN")  # a verdict may be UNKNOWN too
    assert healths(load_policy("acme", "m1")) == {
        "one": ["UNHEALTHY", "HEALTHY", "UNKNOWN"],  # 10.0.0.3 was never probed
        "two": ["HEALTHY", "UNKNOWN", "UNKNOWN"],
        "bare": ["UNKNOWN", "UNKNOWN", "UNKNOWN"],  # no health check: no verdict applies
    }


@pytest.mark.django_db
def test_verdicts_of_another_mesh_or_tenant_do_not_leak_in(api, other_api, tenant):
    shared_group_mesh(api)
    post(api, "meshes", {"name": "m2"})
    post(api, "backend-services", {"name": "elsewhere", "mesh": "m2", "health_checks": ["hc-one"],
                                   "backends": [{"endpoint_group": "g"}]})
    shared_group_mesh(other_api)
    from service.tenants.models import Tenant
    verdict(Tenant.objects.get(name="globex"), "hc-one", "g", "10.0.0.1", "UNHEALTHY")
    assert set(map(tuple, healths(load_policy("acme", "m1")).values())) == {("UNKNOWN",) * 3}
    verdict(tenant, "hc-one", "g", "10.0.0.3", "UNHEALTHY")
    assert healths(load_policy("acme", "m2"))["elsewhere"] == ["UNKNOWN", "UNKNOWN", "UNHEALTHY"]
    assert healths(load_policy("globex", "m1"))["one"] == ["UNHEALTHY", "UNKNOWN", "UNKNOWN"]


@pytest.mark.django_db
def test_verdicts_cost_one_query_for_the_mesh_not_one_per_service(api, tenant, django_assert_num_queries):
    """The budget: the queries of load_policy do not grow with the mesh."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    shared_group_mesh(api)
    verdict(tenant, "hc-one", "g", "10.0.0.1", "UNHEALTHY")
    with CaptureQueriesContext(connection) as captured:
        load_policy("acme", "m1")
    small = captured.captured_queries
    assert small
    for i in range(6):
        post(api, "health-checks", {"name": f"hc-more{i}", "tcp_health_check": {"port": 8080}})
        post(api, "backend-services", {"name": f"more{i}", "mesh": "m1", "health_checks": [f"hc-more{i}"],
                                       "backends": [{"endpoint_group": "g"}]})
        verdict(tenant, f"hc-more{i}", "g", "10.0.0.2", "HEALTHY")
    with django_assert_num_queries(len(small)):
        policy = load_policy("acme", "m1")
    assert healths(policy)["more5"] == ["UNKNOWN", "HEALTHY", "UNKNOWN"]
    assert sum("health_verdict" in query["sql"] for query in small) == 1
