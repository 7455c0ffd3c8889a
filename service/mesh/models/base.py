from django.db import models

from service.tenants.scoping import TenantOwnedModel


class PolicyResource(TenantOwnedModel):
    """A named piece of a tenant's policy. `version` is the content hash of its
    API representation: its ETag, and its entry in a mesh revision's manifest."""

    kind = ""  # the API collection, e.g. "backend-services"
    quota = "resources"

    name = models.CharField(max_length=63)
    description = models.CharField(max_length=1024, blank=True, default="")
    labels = models.JSONField(default=dict, blank=True)
    version = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        abstract = True
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="%(app_label)s_%(class)s_unique_name"),
        ]

    def __str__(self):
        return f"{self.kind}/{self.name}"


class Link(models.Model):
    """A reference from one resource to another, kept as a row so that deleting
    the target is refused (PROTECT) with the referrer named; each names the
    resource it belongs to as `referrer`."""

    class Meta:
        abstract = True
