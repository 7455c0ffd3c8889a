from django.conf import settings
from django.db import models
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from service.tenants import key_cache
from service.tenants.scoping import TenantOwnedModel


class Tenant(models.Model):
    name = models.CharField(max_length=63, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Quotas: how many policy resources, endpoints and connected proxies it may have.
    max_resources = models.PositiveIntegerField(default=2000)
    max_endpoints = models.PositiveIntegerField(default=20000)
    max_proxies = models.PositiveIntegerField(default=5000)
    # No fewer than the policy resources the tenant has, kept by the quota
    # check (quotas.py); NULL when not known, and then counted.
    resources_bound = models.PositiveIntegerField(null=True, blank=True, editable=False)

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        # The bound changes only under the tenant's lock; this copy of it may
        # be stale, and a stale one written back could let creates past the quota.
        self.resources_bound = None
        super().save(*args, **kwargs)

    def quota_limit(self, quota: str) -> int:
        return getattr(self, f"max_{quota}")


class Role(models.TextChoices):
    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"
    OWNER = "owner"

    @classmethod
    def rank(cls, role: str) -> int:
        return [cls.VIEWER, cls.EDITOR, cls.ADMIN, cls.OWNER].index(role)

    @classmethod
    def at_least(cls, role: str, required: str) -> bool:
        return cls.rank(role) >= cls.rank(required)


class Membership(TenantOwnedModel):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    # Kept per membership: users are shared across tenants, what a tenant
    # records about one is not.
    email = models.EmailField(blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="one_membership_per_user")]


class Scope(models.TextChoices):
    READ = "read"
    READ_WRITE = "read-write"


class Credential(TenantOwnedModel):
    """A secret stored as prefix + SHA-256; the plaintext is shown once.
    Revoking it deletes the row, so the next request with it fails."""

    name = models.CharField(max_length=63)
    prefix = models.CharField(max_length=12, unique=True)
    digest = models.CharField(max_length=64)
    last_used_at = models.DateTimeField(null=True, blank=True)

    # last_used_at is written at most this often, so reads stay reads.
    LAST_USED_RESOLUTION_SEC = 60

    class Meta:
        abstract = True

    def mark_used(self):
        now = timezone.now()
        stale = now - timezone.timedelta(seconds=self.LAST_USED_RESOLUTION_SEC)
        if self.last_used_at is None or self.last_used_at < stale:
            # Compare-and-swap, so concurrent requests write it once.
            type(self).objects.filter(pk=self.pk, last_used_at=self.last_used_at).update(last_used_at=now)
            self.last_used_at = now


class APIKey(Credential):
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.EDITOR)
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.READ_WRITE)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # Requests per period ("600/min"); empty means the service default.
    rate_limit = models.CharField(max_length=32, blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="unique_api_key_name")]

    @property
    def can_write(self) -> bool:
        return self.scope == Scope.READ_WRITE


class DroppedAPIKey(models.Model):
    """An API key deleted or changed lately, by its digest: a copy of it in
    the shared cache is not to be used, even where no tombstone could be
    written there (key_cache.py). Rows older than key_cache.TOMBSTONE_TTL_SEC
    are deleted: no cached copy lives that long."""

    digest = models.CharField(max_length=64)
    dropped_at = models.DateTimeField(db_index=True)


# Here rather than in the API's views, so that every way a key goes (the API,
# a tenant's deletion cascading to its keys, a shell) drops its cached copy.
@receiver(post_delete, sender=APIKey)
def forget_deleted_key(sender, instance, **kwargs):
    key_cache.forget(instance.digest)


@receiver(post_save, sender=APIKey)
def forget_changed_key(sender, instance, created, **kwargs):
    if not created:
        key_cache.forget(instance.digest)


@receiver(post_save, sender=Tenant)
def forget_tenants_keys(sender, instance, created, **kwargs):
    """Cached keys carry their tenant (its name, its quotas): a changed tenant
    drops them."""
    if not created:
        for digest in APIKey.objects.filter(tenant=instance).values_list("digest", flat=True):
            key_cache.forget(digest)


class NodeToken(Credential):
    """What a proxy presents to prove it belongs to one tenant's mesh."""

    mesh = models.ForeignKey("mesh.Mesh", on_delete=models.PROTECT, related_name="node_tokens")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="unique_node_token_name")]
