"""Per-tenant quotas. Each tenant-owned model names the quota its rows count
against (`quota = "resources"`). A write checks its quota after it has made its
rows, at the end of its transaction, under the tenant's row lock, so two
concurrent creates cannot both slip under the limit, and creates of one tenant
queue only for that last step.

Counting a tenant's rows costs more the more it has, so the resources quota
keeps a bound on the tenant's row (`Tenant.resources_bound`): never below the
rows there are, because every create adds to it in the statement that takes
the lock; deletes leave it alone. Only when it passes the limit (or is not
known) are the rows counted, and the bound set to the count.
"""
import functools

from django.apps import apps
from django.db import connection
from rest_framework import status
from rest_framework.exceptions import APIException

from service import sql
from service.tenants.models import Tenant
from service.tenants.scoping import TenantOwnedModel


# The quotas whose tenant row keeps a bound (`<quota>_bound`). Every write that
# adds such rows must pass here, or forget the bound (lock_tenant_uncounted).
BOUNDED = frozenset({"resources"})


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


@functools.cache
def usage_sql(quota: str) -> tuple[str, int]:
    """One statement that counts the tenant's rows of every model counted
    against `quota`, and how many times it takes the tenant's id. Built once
    per process: this runs in every create, where compiling it is a cost."""
    quote = connection.ops.quote_name
    counts = [f"(SELECT COUNT(*) FROM {quote(model._meta.db_table)} WHERE tenant_id = %s"
              f"{' AND ' + model.quota_counts if model.quota_counts else ''})"
              for model in counted_models(quota)]
    return f"SELECT {' + '.join(counts) or '0'}", len(counts)


def usage(tenant: Tenant, quota: str) -> int:
    sql, placeholders = usage_sql(quota)
    with connection.cursor() as cursor:
        cursor.execute(sql, [tenant.pk] * placeholders)
        return cursor.fetchone()[0]


def lock_tenant(tenant: Tenant) -> Tenant:
    """Serialize quota-checked writes of one tenant; call inside a transaction.
    The NO KEY lock (sql.row_lock) queues quota checks, but not the foreign-key
    checks every write of the tenant makes (FOR KEY SHARE of this row), which
    would otherwise deadlock with a write that holds a row the quota checker
    waits for."""
    (locked,) = sql.select(Tenant, f"id = %s {sql.row_lock()}", [tenant.pk])
    return locked


def lock_tenant_uncounted(tenant: Tenant) -> None:
    """The tenant's lock for a write that may add rows without ensure_room (a
    rollback): their bounds are forgotten, so the next check counts. An UPDATE
    that sets no key column takes the same NO KEY lock."""
    sql.update(Tenant, ", ".join(f"{quota}_bound = NULL" for quota in sorted(BOUNDED)), "id = %s", [tenant.pk])


def lock_tenant_adding(tenant: Tenant, quota: str, adding: int) -> tuple[Tenant, bool]:
    """The tenant's lock, taken by adding `adding` to the bound of `quota`
    where it keeps one (a prebuilt statement: every create runs it); and
    whether the quota is sure to hold without counting."""
    if quota not in BOUNDED:
        return lock_tenant(tenant), False
    bound = f"{quota}_bound"
    (locked,) = sql.update(Tenant, f"{bound} = {bound} + %s", "id = %s", [adding, tenant.pk], returning=True)
    known = getattr(locked, bound)
    return locked, known is not None and known <= locked.quota_limit(quota)


def ensure_room(tenant: Tenant, quota: str, adding: int = 1) -> None:
    """Call inside the write's transaction, after it made its rows (`adding`
    of them count against `quota`). The count is a statement of its own, after
    the lock: one that waited for the lock must see what its predecessor
    committed, and a statement sees only what was committed when it began."""
    locked, sure = lock_tenant_adding(tenant, quota, adding)
    if sure:
        return
    used, limit = usage(tenant, quota), locked.quota_limit(quota)
    if used > limit:
        raise QuotaExceeded(
            f"The tenant's {quota} quota is {limit}; {used - adding} are in use and this change adds {adding}. "
            "Delete some or ask for a larger quota."
        )
    if quota in BOUNDED:
        sql.update(Tenant, f"{quota}_bound = %s", "id = %s", [used, tenant.pk])
