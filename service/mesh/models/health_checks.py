from django.db import models

from service.mesh.models.base import PolicyResource

PROTOCOL_BLOCKS = ("http_health_check", "https_health_check", "http2_health_check", "tcp_health_check", "grpc_health_check")


class HealthCheck(PolicyResource):
    kind = "health-checks"

    check_interval_sec = models.FloatField(default=5)
    timeout_sec = models.FloatField(default=5)
    healthy_threshold = models.PositiveIntegerField(default=2)
    unhealthy_threshold = models.PositiveIntegerField(default=2)
    # Regions the probes run from; empty means every region with a worker.
    source_regions = models.JSONField(default=list, blank=True)
    # Exactly one protocol block is set.
    http_health_check = models.JSONField(null=True, blank=True)
    https_health_check = models.JSONField(null=True, blank=True)
    http2_health_check = models.JSONField(null=True, blank=True)
    tcp_health_check = models.JSONField(null=True, blank=True)
    grpc_health_check = models.JSONField(null=True, blank=True)

    class Meta(PolicyResource.Meta):
        pass
