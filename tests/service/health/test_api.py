"""The API's view of the workers' findings: GET /backend-services/<name>/health
and the verdicts on endpoint groups. The rows are written here with the ORM,
as the workers write them (service/health/models.py)."""
import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from service.health.models import Health, RegionProbe, Verdict
from service.mesh.models import Endpoint, HealthCheck, Mesh
from service.tenants import key_cache
from service.tenants.models import Role, Scope

AT = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)


def created(client, collection, body):
    response = client.post(f"/api/v1/{collection}", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def endpoints(count, prefix="10.0.0"):
    return [{"address": f"{prefix}.{i + 1}", "port": 8080} for i in range(count)]


def shop(client, count=2, prefix="10.0.0", name="shop", check=True):
    """A mesh, a health check and a backend service over one endpoint group of `count` endpoints."""
    created(client, "meshes", {"name": "m1"})
    if check:
        created(client, "health-checks", {"name": "hc1", "http_health_check": {"port": 8080}})
    created(client, "endpoint-groups", {"name": "eg1", "endpoints": endpoints(count, prefix)})
    created(client, "backend-services", {"name": name, "mesh": "m1", "health_checks": ["hc1"] if check else [],
                                         "backends": [{"endpoint_group": "eg1"}]})


def endpoint(client, address, group="eg1"):
    return Endpoint.objects.get(tenant=client.tenant, group__name=group, address=address)


def check(client, name="hc1"):
    return HealthCheck.objects.get(tenant=client.tenant, name=name)


def verdict(client, address, health, group="eg1", check_name="hc1"):
    Verdict.objects.update_or_create(
        tenant=client.tenant, health_check=check(client, check_name), endpoint=endpoint(client, address, group),
        defaults={"health": health, "changed_at": AT},
    )


def probe(client, address, region, state, error="", latency_ms=1.5):
    RegionProbe.objects.create(
        tenant=client.tenant, health_check=check(client), endpoint=endpoint(client, address), region=region,
        state=state, successes=0 if error else 3, failures=2 if error else 0, probed_at=AT,
        latency_ms=None if error else latency_ms, address=f"{address}:8080", error=error,
    )


def health_of(client, name="shop"):
    response = client.get(f"/api/v1/backend-services/{name}/health")
    assert response.status_code == 200, response.json()
    return response.json()


def by_address(report):
    return {item["address"]: item for backend in report["backends"] for item in backend["endpoints"]}


# --- GET /backend-services/<name>/health ---------------------------------------------------------------------------


def test_never_probed_endpoints_are_unknown_with_no_regions(api):
    shop(api)
    assert health_of(api) == {
        "backend_service": "shop", "health_check": "hc1", "failing_open": False,
        "backends": [{"endpoint_group": "eg1", "endpoints": [
            {"address": "10.0.0.1", "port": 8080, "health": "UNKNOWN", "changed_at": None, "regions": []},
            {"address": "10.0.0.2", "port": 8080, "health": "UNKNOWN", "changed_at": None, "regions": []},
        ]}],
    }


def test_each_endpoint_shows_its_verdict_and_each_regions_last_probe(api):
    shop(api)
    verdict(api, "10.0.0.1", Health.HEALTHY)
    probe(api, "10.0.0.1", "us-east", Health.HEALTHY, latency_ms=2.5)
    probe(api, "10.0.0.1", "eu-west", Health.UNHEALTHY, error="timed out after 5 s")
    shown = by_address(health_of(api))
    assert shown["10.0.0.1"] == {
        "address": "10.0.0.1", "port": 8080, "health": "HEALTHY", "changed_at": "2026-12-01T12:00:00Z",
        "regions": [
            {"region": "eu-west", "state": "UNHEALTHY", "probed_at": "2026-12-01T12:00:00Z", "latency_ms": None,
             "probed_address": "10.0.0.1:8080", "error": "timed out after 5 s"},
            {"region": "us-east", "state": "HEALTHY", "probed_at": "2026-12-01T12:00:00Z", "latency_ms": 2.5,
             "probed_address": "10.0.0.1:8080", "error": ""},
        ],
    }
    assert shown["10.0.0.2"]["health"] == "UNKNOWN"


def test_a_refused_destination_is_shown_with_its_reason(api):
    shop(api)
    reason = "refused: 169.254.169.254 is in a denied network (169.254.0.0/16)"
    verdict(api, "10.0.0.1", Health.UNHEALTHY)
    probe(api, "10.0.0.1", "default", Health.UNHEALTHY, error=reason)
    (region,) = by_address(health_of(api))["10.0.0.1"]["regions"]
    assert region["error"] == reason and region["state"] == "UNHEALTHY"


def test_the_service_fails_open_when_every_endpoint_is_unhealthy(api):
    shop(api)
    verdict(api, "10.0.0.1", Health.UNHEALTHY)
    assert health_of(api)["failing_open"] is False  # 10.0.0.2 is still UNKNOWN
    verdict(api, "10.0.0.2", Health.UNHEALTHY)
    assert health_of(api)["failing_open"] is True
    verdict(api, "10.0.0.2", Health.HEALTHY)
    assert health_of(api)["failing_open"] is False


def test_a_service_with_no_endpoints_does_not_fail_open(api):
    shop(api, count=0)
    assert health_of(api)["failing_open"] is False
    assert health_of(api)["backends"] == [{"endpoint_group": "eg1", "endpoints": []}]


def test_a_service_without_a_health_check_shows_unknown(api):
    shop(api, check=False)
    report = health_of(api)
    assert report["health_check"] is None and report["failing_open"] is False
    assert {item["health"] for item in by_address(report).values()} == {"UNKNOWN"}


def test_another_tenants_service_is_a_404_and_never_shows_its_rows(api, other_api):
    shop(api, prefix="10.0.0")
    shop(other_api, prefix="10.9.9")
    created(other_api, "backend-services", {"name": "private", "mesh": "m1", "health_checks": ["hc1"],
                                            "backends": [{"endpoint_group": "eg1"}]})
    verdict(other_api, "10.9.9.1", Health.UNHEALTHY)
    verdict(other_api, "10.9.9.2", Health.UNHEALTHY)
    probe(other_api, "10.9.9.1", "default", Health.UNHEALTHY, error="connection refused")
    assert api.get("/api/v1/backend-services/private/health").status_code == 404
    mine = health_of(api)  # the same name in both tenants
    assert set(by_address(mine)) == {"10.0.0.1", "10.0.0.2"}
    assert mine["failing_open"] is False
    assert all(item["health"] == "UNKNOWN" and item["regions"] == [] for item in by_address(mine).values())
    assert health_of(other_api)["failing_open"] is True


def test_the_health_endpoint_is_read_only(api, tenant, client_for):
    shop(api)
    viewer = client_for(tenant, role=Role.VIEWER, scope=Scope.READ, name="viewer")
    assert viewer.get("/api/v1/backend-services/shop/health").json() == health_of(api)
    for method in ("post", "put", "patch", "delete"):
        response = getattr(api, method)("/api/v1/backend-services/shop/health", {}, format="json")
        assert response.status_code == 405, (method, response.status_code)


def queries_for(client, url) -> int:
    # Read now, the keys revoked lately are not read again by the request
    # (at most one read per DROPPED_CHECK_SEC per process, key_cache.py).
    key_cache.dropped.read()
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_the_health_endpoints_queries_do_not_grow_with_the_endpoints(api, other_api):
    for client, count in ((api, 2), (other_api, 60)):
        shop(client, count=count)
        for i in range(count):
            verdict(client, f"10.0.0.{i + 1}", Health.HEALTHY)
            probe(client, f"10.0.0.{i + 1}", "default", Health.HEALTHY)
    few = queries_for(api, "/api/v1/backend-services/shop/health")
    many = queries_for(other_api, "/api/v1/backend-services/shop/health")
    assert len(by_address(health_of(other_api))) == 60
    assert many == few


# --- endpoint groups show their endpoints' verdicts --------------------------------------------------------------


def two_services_over_one_group(client):
    shop(client)
    created(client, "health-checks", {"name": "hc0", "tcp_health_check": {"port": 9000}})
    created(client, "backend-services", {"name": "admin", "mesh": "m1", "health_checks": ["hc0"],
                                         "backends": [{"endpoint_group": "eg1"}]})


def test_endpoint_groups_show_the_verdict_under_each_check_that_applies(api):
    two_services_over_one_group(api)
    created(api, "endpoint-groups", {"name": "unused", "endpoints": endpoints(1)})
    verdict(api, "10.0.0.1", Health.UNHEALTHY)
    group = api.get("/api/v1/endpoint-groups/eg1").json()
    assert group["endpoints"][0]["health"] == [
        {"health_check": "hc0", "health": "UNKNOWN", "changed_at": None},
        {"health_check": "hc1", "health": "UNHEALTHY", "changed_at": "2026-12-01T12:00:00Z"},
    ]
    assert [item["health"] for item in group["endpoints"][1]["health"]] == ["UNKNOWN", "UNKNOWN"]
    listed = {item["name"]: item for item in api.get("/api/v1/endpoint-groups").json()["results"]}
    assert listed["eg1"]["endpoints"] == group["endpoints"]
    assert listed["unused"]["endpoints"][0]["health"] == []  # no service, no check applies


def test_a_verdict_change_changes_no_etag_and_makes_no_revision(api):
    shop(api)
    before = api.get("/api/v1/endpoint-groups/eg1")
    revision = Mesh.objects.get(tenant=api.tenant, name="m1").revision
    verdict(api, "10.0.0.1", Health.UNHEALTHY)
    after = api.get("/api/v1/endpoint-groups/eg1")
    assert after.json()["endpoints"][0]["health"][0]["health"] == "UNHEALTHY"
    assert after["ETag"] == before["ETag"] and after.json()["etag"] == before.json()["etag"]
    assert Mesh.objects.get(tenant=api.tenant, name="m1").revision == revision


def test_writes_ignore_the_health_they_are_sent(api):
    shop(api)
    verdict(api, "10.0.0.1", Health.UNHEALTHY)
    body = api.get("/api/v1/endpoint-groups/eg1").json()
    body["endpoints"][0]["health"] = [{"health_check": "hc1", "health": "HEALTHY", "changed_at": None}]
    replaced = api.put("/api/v1/endpoint-groups/eg1", body, format="json", HTTP_IF_MATCH=f'"{body["etag"]}"')
    assert replaced.status_code == 200, replaced.json()
    assert replaced.json()["etag"] == body["etag"]  # the same policy: the same content hash
    assert replaced.json()["endpoints"][0]["health"][0]["health"] == "UNHEALTHY"
    patched = api.patch("/api/v1/endpoint-groups/eg1", {"endpoints": body["endpoints"]}, format="json")
    assert patched.status_code == 200 and patched.json()["etag"] == body["etag"]
    assert Verdict.objects.get(endpoint=endpoint(api, "10.0.0.1")).health == Health.UNHEALTHY


def test_a_write_that_keeps_an_endpoint_keeps_its_verdict(api):
    shop(api)
    verdict(api, "10.0.0.1", Health.UNHEALTHY)
    verdict(api, "10.0.0.2", Health.UNHEALTHY)
    kept = api.patch("/api/v1/endpoint-groups/eg1", {"capacity_scaler": 0.5}, format="json")
    assert kept.status_code == 200
    assert [item["health"][0]["health"] for item in kept.json()["endpoints"]] == ["UNHEALTHY", "UNHEALTHY"]
    replaced = api.patch("/api/v1/endpoint-groups/eg1", {"endpoints": [
        {"address": "10.0.0.2", "port": 8080, "weight": 5}, {"address": "10.0.0.3", "port": 8080}]}, format="json")
    assert replaced.status_code == 200, replaced.json()
    shown = {item["address"]: (item["weight"], item["health"][0]["health"]) for item in replaced.json()["endpoints"]}
    assert shown == {"10.0.0.2": (5, "UNHEALTHY"), "10.0.0.3": (1, "UNKNOWN")}
    assert api.get("/api/v1/endpoint-groups/eg1").json()["endpoints"] == replaced.json()["endpoints"]
    assert Verdict.objects.filter(tenant=api.tenant).count() == 1  # 10.0.0.1's went with it


def test_endpoint_group_queries_do_not_grow_with_the_endpoints(api, other_api):
    for client, count in ((api, 2), (other_api, 60)):
        shop(client, count=count)
        created(client, "health-checks", {"name": "hc0", "tcp_health_check": {"port": 9000}})
        created(client, "backend-services", {"name": "admin", "mesh": "m1", "health_checks": ["hc0"],
                                             "backends": [{"endpoint_group": "eg1"}]})
        created(client, "endpoint-groups", {"name": "eg2", "endpoints": endpoints(count, "10.1.0")})
        for i in range(count):
            verdict(client, f"10.0.0.{i + 1}", Health.HEALTHY)
    assert len(api.get("/api/v1/endpoint-groups/eg1").json()["endpoints"][0]["health"]) == 2
    for url in ("/api/v1/endpoint-groups", "/api/v1/endpoint-groups/eg1", "/api/v1/endpoint-groups/eg2"):
        assert queries_for(api, url) == queries_for(other_api, url), url


# --- the health check's port ------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", ["http_health_check", "https_health_check", "http2_health_check",
                                   "tcp_health_check", "grpc_health_check"])
def test_a_health_check_without_a_port_probes_each_endpoints_serving_port(api, block):
    response = api.post("/api/v1/health-checks", {"name": "serving", block: {}}, format="json")
    assert response.status_code == 201, response.json()
    assert "port" not in response.json()[block]
    refused = api.post("/api/v1/health-checks", {"name": "bad", block: {"port": 0}}, format="json")
    assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == f"{block}.port"


def test_an_https_check_verifies_the_certificate_only_when_it_asks(api):
    lax = created(api, "health-checks", {"name": "lax", "https_health_check": {"port": 8443}})
    assert "verify_tls" not in lax["https_health_check"]  # left out: any certificate is accepted
    strict = created(api, "health-checks", {"name": "strict", "https_health_check": {"verify_tls": True}})
    assert strict["https_health_check"] == {"request_path": "/", "verify_tls": True}
    refused = api.post("/api/v1/health-checks", {"name": "bad", "https_health_check": {"verify_tls": "maybe"}},
                       format="json")
    assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "https_health_check.verify_tls"


def test_an_http2_check_speaks_h2c_unless_it_asks_for_tls(api):
    from service.mesh.models import HealthCheck
    from workers.probing import spec_of

    plain = created(api, "health-checks", {"name": "h2c", "http2_health_check": {"port": 8080}})
    assert plain["http2_health_check"] == {"port": 8080, "request_path": "/"}
    assert spec_of(HealthCheck.objects.get(name="h2c")).uses_tls is False
    over_tls = created(api, "health-checks", {"name": "h2", "http2_health_check": {"tls": True, "verify_tls": True}})
    assert over_tls["http2_health_check"] == {"request_path": "/", "tls": True, "verify_tls": True}
    spec = spec_of(HealthCheck.objects.get(name="h2"))
    assert (spec.protocol, spec.uses_tls, spec.verify_tls) == ("HTTP2", True, True)
    refused = api.post("/api/v1/health-checks", {"name": "bad", "http2_health_check": {"verify_tls": True}},
                       format="json")
    assert refused.status_code == 400, refused.json()
    assert refused.json()["errors"][0]["field"] == "http2_health_check.verify_tls"


def test_a_tcp_checks_request_and_response_are_kept_byte_for_byte(api):
    # A line protocol's payload ends in its line end: trimmed, "PING\r\n" would be
    # "PING", and a server reading a line would never answer it.
    body = created(api, "health-checks", {"name": "redis", "tcp_health_check": {"request": "PING\r\n",
                                                                               "response": "+PONG\r\n"}})
    assert body["tcp_health_check"] == {"request": "PING\r\n", "response": "+PONG\r\n"}
    stored = HealthCheck.objects.get(name="redis").tcp_health_check
    assert (stored["request"], stored["response"]) == ("PING\r\n", "+PONG\r\n")
