"""The shapes in which the API shows the workers' findings (read-only; the
objects are service.health.status's)."""
from rest_framework import serializers

from service.health.models import Health


class RegionStateSerializer(serializers.Serializer):
    region = serializers.CharField(help_text="The source region that probes.")
    state = serializers.ChoiceField(
        Health.choices, help_text="The endpoint's state from this region's consecutive results (the thresholds).")
    probed_at = serializers.DateTimeField(allow_null=True, help_text="When this region last probed the endpoint.")
    latency_ms = serializers.FloatField(allow_null=True, help_text="How long the last probe took, if it got an answer.")
    probed_address = serializers.CharField(
        help_text="What the last probe was aimed at, after name resolution (ip:port).")
    error = serializers.CharField(
        help_text="Why the last probe failed (a refused destination says so here); empty if it passed.")


class EndpointHealthSerializer(serializers.Serializer):
    address = serializers.CharField()
    port = serializers.IntegerField()
    health = serializers.ChoiceField(
        Health.choices, help_text="The verdict across regions, as proxies receive it (EDS health_status); "
                                  "UNKNOWN until probed, and without a health check.")
    changed_at = serializers.DateTimeField(allow_null=True, help_text="When the verdict last changed.")
    regions = RegionStateSerializer(many=True, help_text="Each source region's view; none until probed.")


class BackendHealthSerializer(serializers.Serializer):
    endpoint_group = serializers.CharField()
    endpoints = EndpointHealthSerializer(many=True)


class ServiceHealthSerializer(serializers.Serializer):
    backend_service = serializers.CharField()
    health_check = serializers.CharField(allow_null=True, help_text="The service's health check, if it has one.")
    failing_open = serializers.BooleanField(
        help_text="Every endpoint is UNHEALTHY: proxies get them all, as they would without health checks.")
    backends = BackendHealthSerializer(many=True)


class EndpointVerdictSerializer(serializers.Serializer):
    health_check = serializers.CharField(help_text="A health check of a backend service that uses the group.")
    health = serializers.ChoiceField(Health.choices, help_text="The endpoint's verdict under it.")
    changed_at = serializers.DateTimeField(allow_null=True, help_text="When the verdict last changed.")
