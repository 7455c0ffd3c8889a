from django.db import models

from service.tenants.scoping import TenantOwnedModel


class ResourceVersion(TenantOwnedModel):
    """One API representation of a resource, stored once under its content hash;
    revisions refer to these instead of copying every resource every time."""

    digest = models.CharField(max_length=64)
    kind = models.CharField(max_length=32)
    name = models.CharField(max_length=63)
    body = models.JSONField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "digest"], name="unique_resource_version")]


class Change(TenantOwnedModel):
    """The history entry of one committed write: who, when, what."""

    actor = models.CharField(max_length=200)
    action = models.CharField(max_length=16)  # create, update, delete, attach, detach, rollback
    kind = models.CharField(max_length=32)
    name = models.CharField(max_length=63)
    # The resources the change touched, as "kind/name" -> digest ("" once deleted).
    resources = models.JSONField(default=dict)

    class Meta:
        ordering = ["-id"]


class Revision(models.Model):
    """The configuration of one mesh after a change: a manifest of "kind/name"
    -> digest of every resource its proxies depend on. A revision stores only
    what changed in the manifest since the one before (`changes`, "" for a
    resource that left it); every CHECKPOINT_EVERY-th also stores the whole
    manifest (`checkpoint`), so a write costs O(change), not O(mesh), and any
    manifest is a checkpoint plus fewer than CHECKPOINT_EVERY deltas away
    (service.mesh.revisions)."""

    mesh = models.ForeignKey("mesh.Mesh", on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    change = models.ForeignKey(Change, on_delete=models.PROTECT, related_name="revisions")
    changes = models.JSONField(default=dict)
    checkpoint = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["mesh", "number"], name="unique_revision_number")]
