from django.db import models

from service.mesh.models.base import PolicyResource
from service.tenants.scoping import TenantOwnedModel


class EndpointGroup(PolicyResource):
    kind = "endpoint-groups"

    cloud = models.CharField(max_length=32, blank=True, default="")
    region = models.CharField(max_length=63, blank=True, default="")
    zone = models.CharField(max_length=63, blank=True, default="")
    max_rate_per_endpoint = models.FloatField(null=True, blank=True)
    capacity_scaler = models.FloatField(default=1.0)
    # One of aws_autoscaling_group / aws_ecs_service / webhook, or none.
    scaler = models.JSONField(null=True, blank=True)

    class Meta(PolicyResource.Meta):
        pass


class Endpoint(TenantOwnedModel):
    quota = "endpoints"

    group = models.ForeignKey(EndpointGroup, on_delete=models.CASCADE, related_name="endpoints")
    address = models.CharField(max_length=253)
    port = models.PositiveIntegerField()
    weight = models.PositiveIntegerField(default=1)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["address", "port"]
        constraints = [models.UniqueConstraint(fields=["group", "address", "port"], name="unique_endpoint")]
