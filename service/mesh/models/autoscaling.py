from django.db import models

from service.mesh.models.base import PolicyResource


class AutoscalingPolicy(PolicyResource):
    kind = "autoscaling-policies"

    target = models.OneToOneField(
        "mesh.EndpointGroup", on_delete=models.PROTECT, related_name="autoscaling_policy"
    )
    min_replicas = models.PositiveIntegerField(default=1)
    max_replicas = models.PositiveIntegerField()
    cooldown_period = models.PositiveIntegerField(default=60)
    load_balancing_utilization = models.JSONField(default=dict)
    scale_in_control = models.JSONField(null=True, blank=True)
    mode = models.CharField(max_length=16, default="ON")

    class Meta(PolicyResource.Meta):
        pass
