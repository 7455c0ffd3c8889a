from django.db import models

from service.mesh.models.base import Link, PolicyResource


class BackendService(PolicyResource):
    kind = "backend-services"

    mesh = models.ForeignKey("mesh.Mesh", on_delete=models.PROTECT, related_name="backend_services")
    protocol = models.CharField(max_length=8, default="HTTP")
    health_checks = models.ManyToManyField(
        "mesh.HealthCheck", through="BackendServiceHealthCheck", related_name="backend_services"
    )
    locality_lb_policy = models.CharField(max_length=32, default="ROUND_ROBIN")
    timeout_sec = models.FloatField(default=30)
    session_affinity = models.CharField(max_length=32, default="NONE")
    circuit_breakers = models.JSONField(null=True, blank=True)
    outlier_detection = models.JSONField(null=True, blank=True)
    consistent_hash = models.JSONField(null=True, blank=True)
    failover = models.JSONField(null=True, blank=True)

    class Meta(PolicyResource.Meta):
        pass

    def related_tenant_objects(self):
        yield from super().related_tenant_objects()
        yield from self.health_checks.all()
        for backend in self.backends.select_related("endpoint_group"):
            yield backend.endpoint_group


class BackendServiceHealthCheck(Link):
    backend_service = models.ForeignKey(BackendService, on_delete=models.CASCADE)
    health_check = models.ForeignKey("mesh.HealthCheck", on_delete=models.PROTECT, related_name="+")

    @property
    def referrer(self):
        return self.backend_service


class Backend(Link):
    backend_service = models.ForeignKey(BackendService, on_delete=models.CASCADE, related_name="backends")
    endpoint_group = models.ForeignKey("mesh.EndpointGroup", on_delete=models.PROTECT, related_name="backends")
    position = models.PositiveIntegerField()
    balancing_mode = models.CharField(max_length=16, default="RATE")
    capacity_scaler = models.FloatField(default=1.0)
    preference = models.CharField(max_length=16, default="DEFAULT")
    max_rate_per_endpoint = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["position"]

    @property
    def referrer(self):
        return self.backend_service
