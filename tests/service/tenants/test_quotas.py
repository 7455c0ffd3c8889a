"""Per-tenant quotas: creates beyond them are 403 quota_exceeded and write
nothing, including under concurrency."""
import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from service.mesh.models import Endpoint, EndpointGroup, Mesh
from service.tenants import quotas
from service.tenants.models import Tenant
from tests.service.api_base import seed
from tests.service.mesh.test_api_resources import http_rules


def endpoints(count, first=1):
    return [{"address": f"10.0.0.{first + i}", "port": 8080} for i in range(count)]


def set_quota(tenant, **limits):
    for field, value in limits.items():
        setattr(tenant, field, value)
    tenant.save()


def test_resources_beyond_the_quota_are_refused(api, tenant):
    set_quota(tenant, max_resources=2)
    for name in ("m1", "m2"):
        assert api.post("/api/v1/meshes", {"name": name}, format="json").status_code == 201
    refused = api.post("/api/v1/meshes", {"name": "m3"}, format="json")
    assert refused.status_code == 403
    assert refused.json()["code"] == "quota_exceeded"
    assert "2" in refused.json()["message"]
    assert api.get("/api/v1/meshes/m3").status_code == 404
    assert sorted(Mesh.objects.filter(tenant=tenant).values_list("name", flat=True)) == ["m1", "m2"]
    # Every kind of policy resource counts against the same quota.
    other_kind = api.post("/api/v1/health-checks", {"name": "hc", "tcp_health_check": {"port": 80}}, format="json")
    assert other_kind.status_code == 403
    assert other_kind.json()["code"] == "quota_exceeded"
    assert api.get("/api/v1/tenant").json()["usage"]["resources"] == 2


def test_room_freed_by_a_delete_can_be_used(api, tenant):
    set_quota(tenant, max_resources=1)
    assert api.post("/api/v1/meshes", {"name": "m1"}, format="json").status_code == 201
    assert api.post("/api/v1/meshes", {"name": "m2"}, format="json").status_code == 403
    assert api.delete("/api/v1/meshes/m1").status_code == 204
    assert api.post("/api/v1/meshes", {"name": "m2"}, format="json").status_code == 201


def bound(tenant):
    return Tenant.objects.get(pk=tenant.pk).resources_bound


def test_a_create_under_a_known_bound_counts_nothing(api, tenant):
    assert api.post("/api/v1/meshes", {"name": "m1"}, format="json").status_code == 201
    assert bound(tenant) == 1  # not known before: counted
    with CaptureQueriesContext(connection) as queries:
        assert api.post("/api/v1/meshes", {"name": "m2"}, format="json").status_code == 201
    assert not [query["sql"] for query in queries if "COUNT(" in query["sql"]]
    assert bound(tenant) == quotas.usage(tenant, "resources") == 2
    # A delete leaves the bound above what is used; it stays an upper bound.
    assert api.delete("/api/v1/meshes/m2").status_code == 204
    assert bound(tenant) == 2 and quotas.usage(tenant, "resources") == 1


def test_a_saved_tenant_forgets_its_bound(api, tenant):
    assert api.post("/api/v1/meshes", {"name": "m1"}, format="json").status_code == 201
    stale = Tenant.objects.get(pk=tenant.pk)
    assert api.post("/api/v1/meshes", {"name": "m2"}, format="json").status_code == 201
    stale.max_resources = 2
    stale.save()  # its copy of the bound (1) is below what is used now
    assert bound(tenant) is None
    assert api.post("/api/v1/meshes", {"name": "m3"}, format="json").status_code == 403


def test_a_rollback_makes_the_next_create_count_what_it_restored(api, tenant):
    seed(api)
    body = {"name": "web", "meshes": ["m1"], "hostnames": ["web.example"], "rules": http_rules((90, 10))}
    assert api.post("/api/v1/http-routes", body, format="json").status_code == 201
    good = api.get("/api/v1/meshes/m1/revisions").json()["results"][0]["number"]
    assert api.delete("/api/v1/http-routes/web").status_code == 204
    used = quotas.usage(tenant, "resources")
    set_quota(tenant, max_resources=used + 1)
    assert api.post("/api/v1/meshes", {"name": "m9"}, format="json").status_code == 201
    assert bound(tenant) == used + 1  # counted, so exact
    assert api.post(f"/api/v1/meshes/m1/revisions/{good}/rollback").status_code == 201  # web is back
    # Without counting, the old bound would leave room for one more.
    Tenant.objects.filter(pk=tenant.pk).update(max_resources=used + 2)
    refused = api.post("/api/v1/meshes", {"name": "m10"}, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "quota_exceeded"


def test_quotas_are_per_tenant(api, other_api, tenant):
    set_quota(tenant, max_resources=1)
    assert api.post("/api/v1/meshes", {"name": "m1"}, format="json").status_code == 201
    for name in ("m1", "m2", "m3"):
        assert other_api.post("/api/v1/meshes", {"name": name}, format="json").status_code == 201


def test_an_endpoint_group_beyond_the_endpoint_quota_is_refused(api, tenant):
    set_quota(tenant, max_endpoints=3)
    refused = api.post("/api/v1/endpoint-groups", {"name": "eg1", "endpoints": endpoints(4)}, format="json")
    assert refused.status_code == 403
    assert refused.json()["code"] == "quota_exceeded"
    assert api.get("/api/v1/endpoint-groups/eg1").status_code == 404
    assert not EndpointGroup.objects.filter(tenant=tenant).exists()
    assert not Endpoint.objects.filter(tenant=tenant).exists()
    # Exactly the quota is fine.
    assert api.post("/api/v1/endpoint-groups", {"name": "eg1", "endpoints": endpoints(3)}, format="json").status_code == 201


def test_endpoints_of_all_groups_count_together(api, tenant):
    set_quota(tenant, max_endpoints=3)
    assert api.post("/api/v1/endpoint-groups", {"name": "eg1", "endpoints": endpoints(2)}, format="json").status_code == 201
    refused = api.post("/api/v1/endpoint-groups", {"name": "eg2", "endpoints": endpoints(2, first=50)}, format="json")
    assert refused.status_code == 403
    assert refused.json()["code"] == "quota_exceeded"
    assert not EndpointGroup.objects.filter(tenant=tenant, name="eg2").exists()
    assert Endpoint.objects.filter(tenant=tenant).count() == 2


# The two tests below run in real transactions (as a request in production
# does), not inside the test's wrapping transaction, so a write that is refused
# after it began must really be rolled back.


@pytest.mark.django_db(transaction=True)
def test_attach_beyond_the_endpoint_quota_is_refused(api, tenant):
    set_quota(tenant, max_endpoints=3)
    created = api.post("/api/v1/endpoint-groups", {"name": "eg1", "endpoints": endpoints(2)}, format="json")
    assert created.status_code == 201
    before = api.get("/api/v1/endpoint-groups/eg1").json()

    refused = api.post("/api/v1/endpoint-groups/eg1/attach", {"endpoints": endpoints(2, first=10)}, format="json")
    assert refused.status_code == 403
    assert refused.json()["code"] == "quota_exceeded"
    after = api.get("/api/v1/endpoint-groups/eg1").json()
    assert after == before
    assert Endpoint.objects.filter(tenant=tenant).count() == 2

    # Up to the quota works, and re-attaching known endpoints adds none.
    one_more = api.post("/api/v1/endpoint-groups/eg1/attach", {"endpoints": endpoints(1, first=10)}, format="json")
    assert one_more.status_code == 200, one_more.json()
    assert len(one_more.json()["endpoints"]) == 3
    reweigh = [{**endpoint, "weight": 5} for endpoint in endpoints(2)]
    again = api.post("/api/v1/endpoint-groups/eg1/attach", {"endpoints": reweigh}, format="json")
    assert again.status_code == 200, again.json()
    assert Endpoint.objects.filter(tenant=tenant).count() == 3
    assert sorted(e["weight"] for e in again.json()["endpoints"]) == [1, 5, 5]


@pytest.mark.django_db(transaction=True)
def test_replacing_endpoints_beyond_the_quota_is_refused(api, tenant):
    """PATCH (and PUT) must be refused as a whole: 403 and the group as it was."""
    set_quota(tenant, max_endpoints=3)
    assert api.post("/api/v1/endpoint-groups", {"name": "eg1", "endpoints": endpoints(2)}, format="json").status_code == 201
    before = api.get("/api/v1/endpoint-groups/eg1").json()
    api.raise_request_exception = False  # a server error is an answer here, not a crash of the test
    refused = api.patch("/api/v1/endpoint-groups/eg1", {"endpoints": endpoints(4)}, format="json")
    assert refused.status_code == 403, refused.content[:300]
    assert refused.json()["code"] == "quota_exceeded"
    assert api.get("/api/v1/endpoint-groups/eg1").json() == before
    assert Endpoint.objects.filter(tenant=tenant).count() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_cannot_exceed_the_quota(tenant, client_for):
    set_quota(tenant, max_resources=5)
    key = client_for(tenant).key
    barrier = threading.Barrier(10)
    statuses = []
    lock = threading.Lock()

    def create(index):
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
            barrier.wait(timeout=30)
            response = client.post("/api/v1/meshes", {"name": f"m{index}"}, format="json")
            body = response.json()
            with lock:
                statuses.append((response.status_code, body.get("code") if isinstance(body, dict) else None))
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(index,)) for index in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)

    assert len(statuses) == 10
    assert sorted(status for status, _ in statuses).count(201) == 5, statuses
    assert [code for status, code in statuses if status != 201] == ["quota_exceeded"] * 5, statuses
    assert Mesh.objects.filter(tenant=tenant).count() == 5
    assert Tenant.objects.get(pk=tenant.pk).max_resources == 5
