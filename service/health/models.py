"""What the health workers found: per (health check, endpoint, source region)
the consecutive-result state of that region's probes, and per (health check,
endpoint) the verdict across regions that the proxies receive (EDS
``health_status``). Rows are written by workers only, with compare-and-swap
updates, so a retried or duplicated probe task changes nothing twice."""
from django.db import models

from service.health.verdicts import Health
from service.tenants.scoping import TenantOwnedModel

__all__ = ["Health", "ProbeSchedule", "RegionProbe", "Verdict"]


class RegionProbe(TenantOwnedModel):
    """One source region's view of one endpoint under one health check."""

    health_check = models.ForeignKey("mesh.HealthCheck", on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey("mesh.Endpoint", on_delete=models.CASCADE, related_name="+")
    region = models.CharField(max_length=63)
    state = models.CharField(max_length=9, choices=Health.choices, default=Health.UNKNOWN)
    # Consecutive results of one kind, against the thresholds.
    successes = models.PositiveIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    probed_at = models.DateTimeField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    # What was probed (the resolved address and port) and why the last probe failed.
    address = models.CharField(max_length=300, blank=True, default="")
    error = models.CharField(max_length=1024, blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["health_check", "endpoint", "region"],
                                               name="one_probe_state_per_region")]


class Verdict(TenantOwnedModel):
    """An endpoint's health under one health check, across its source regions."""

    health_check = models.ForeignKey("mesh.HealthCheck", on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey("mesh.Endpoint", on_delete=models.CASCADE, related_name="+")
    health = models.CharField(max_length=9, choices=Health.choices, default=Health.UNKNOWN)
    changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["health_check", "endpoint"], name="one_verdict_per_check")]


class ProbeSchedule(TenantOwnedModel):
    """When a health check's next probe round is due. The scheduler claims a
    round by moving ``next_round_at`` with a compare-and-swap update, so two
    schedulers (two beats, or a retried tick) never both start one round."""

    health_check = models.OneToOneField("mesh.HealthCheck", on_delete=models.CASCADE, related_name="+")
    next_round_at = models.DateTimeField(db_index=True)
