"""Setting a tenant's quotas is the operator's act (`interlock tenant quotas`,
through services.set_quotas); the tenant reads them, and what it uses of
them, through GET /tenant and cannot change them."""
import pytest
from django.core.exceptions import ValidationError

from service.tenants.models import Role, Tenant
from service.tenants.services import set_quotas

pytestmark = pytest.mark.django_db

DEFAULTS = {"max_resources": 2000, "max_endpoints": 20000, "max_proxies": 5000}


def quotas_of(name):
    return Tenant.objects.filter(name=name).values(*DEFAULTS).get()


def test_set_quotas_changes_only_the_quotas_given(tenant):
    set_quotas("acme", {"max_proxies": "7", "max_endpoints": 0})
    assert quotas_of("acme") == {"max_resources": 2000, "max_endpoints": 0, "max_proxies": 7}


def test_set_quotas_leaves_other_tenants_alone(tenant, other_api):
    set_quotas("acme", {"max_resources": 3})
    assert quotas_of("globex") == DEFAULTS


@pytest.mark.parametrize("value", ["-1", "ten", "1.5", "", str(2**31), None])
def test_a_bad_value_is_refused_naming_the_field_and_changes_nothing(tenant, value):
    with pytest.raises(ValidationError) as refused:
        set_quotas("acme", {"max_resources": "5", "max_proxies": value})
    assert set(refused.value.message_dict) == {"max_proxies"}
    assert quotas_of("acme") == DEFAULTS


def test_an_unknown_quota_is_refused(tenant):
    with pytest.raises(ValidationError) as refused:
        set_quotas("acme", {"max_widgets": "5"})
    assert set(refused.value.message_dict) == {"max_widgets"}
    assert quotas_of("acme") == DEFAULTS


def test_an_unknown_tenant_is_not_found(tenant):
    with pytest.raises(Tenant.DoesNotExist):
        set_quotas("nobody", {"max_proxies": "5"})


def test_the_tenant_reads_the_quotas_the_operator_set_and_its_usage(tenant, api):
    assert api.post("/api/v1/meshes", {"name": "m1"}, format="json").status_code == 201
    set_quotas("acme", {"max_resources": "10", "max_proxies": "3"})
    body = api.get("/api/v1/tenant").json()
    assert {quota: body[quota] for quota in DEFAULTS} == {"max_resources": 10, "max_endpoints": 20000,
                                                          "max_proxies": 3}
    assert body["usage"] == {"resources": 1, "endpoints": 0, "proxies": 0}


def test_a_lowered_quota_refuses_the_next_create(tenant, api):
    assert api.post("/api/v1/meshes", {"name": "m1"}, format="json").status_code == 201
    set_quotas("acme", {"max_resources": "1"})
    refused = api.post("/api/v1/meshes", {"name": "m2"}, format="json")
    assert refused.status_code == 403
    assert refused.json()["code"] == "quota_exceeded"


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_even_an_owner_key_cannot_raise_its_own_quota(tenant, client_for, method):
    owner = client_for(tenant, role=Role.OWNER, name="the-owner")
    raised = {"max_resources": 10**6, "max_endpoints": 10**6, "max_proxies": 10**6}
    for path in ("/api/v1/tenant", "/api/v1/tenant/"):
        response = getattr(owner, method)(path, raised, format="json")
        assert response.status_code in (404, 405), (path, response.status_code)
    assert quotas_of("acme") == DEFAULTS
    assert {quota: owner.get("/api/v1/tenant").json()[quota] for quota in DEFAULTS} == DEFAULTS
