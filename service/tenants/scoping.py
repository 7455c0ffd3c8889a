"""Tenant scoping, written once: every tenant-owned model, queryset and viewset
builds on these (the NetBox way), so no endpoint can forget it."""
from django.db import models


class TenantQuerySet(models.QuerySet):
    def for_tenant(self, tenant):
        return self.filter(tenant=tenant)


class TenantOwnedModel(models.Model):
    """A row that belongs to exactly one tenant and is addressed by name in it."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = TenantQuerySet.as_manager()

    # Which per-tenant quota a row of this model counts against, if any, and
    # which rows count: an SQL condition on its table ("" for every row).
    quota = None
    quota_counts = ""

    class Meta:
        abstract = True

    def related_tenant_objects(self):
        """Every object this one refers to; each must belong to the same tenant.
        Models with references outside their own foreign keys extend this."""
        for field in self._meta.concrete_fields:
            if field.is_relation and issubclass(field.related_model, TenantOwnedModel):
                related = getattr(self, field.name)
                if related is not None:
                    yield related

    def belongs_wholly_to(self, tenant) -> bool:
        return self.tenant_id == tenant.pk and all(
            obj.tenant_id == tenant.pk for obj in self.related_tenant_objects()
        )
