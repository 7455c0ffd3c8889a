"""Per-tenant quotas. Each tenant-owned model names the quota its rows count
against (`quota = "resources"`); a create takes the tenant's row lock, then
counts, so two concurrent creates cannot both slip under the limit."""
import functools

from django.apps import apps
from rest_framework import status
from rest_framework.exceptions import APIException

from service.tenants.models import Tenant
from service.tenants.scoping import TenantOwnedModel


class QuotaExceeded(APIException):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "quota_exceeded"


@functools.cache
def counted_models(quota: str):
    return [
        model
        for model in apps.get_models()
        # Proxy models share their concrete model's table; count it once.
        if issubclass(model, TenantOwnedModel) and model.quota == quota and not model._meta.proxy
    ]


def usage(tenant: Tenant, quota: str) -> int:
    return sum(model.objects.filter(tenant=tenant).count() for model in counted_models(quota))


def lock_tenant(tenant: Tenant) -> Tenant:
    """Serialize quota-checked creates of one tenant; call inside a transaction."""
    return Tenant.objects.select_for_update().get(pk=tenant.pk)


def ensure_room(tenant: Tenant, quota: str, adding: int = 1) -> None:
    limit = tenant.quota_limit(quota)
    used = usage(tenant, quota)
    if used + adding > limit:
        raise QuotaExceeded(
            f"The tenant's {quota} quota is {limit}; {used} are in use and this change adds {adding}. "
            "Delete some or ask for a larger quota."
        )
