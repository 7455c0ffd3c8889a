from django.db.models import prefetch_related_objects
from rest_framework import serializers

from service.health.api.serializers import EndpointVerdictSerializer
from service.health.status import attach_endpoint_verdicts
from service.mesh import validation
from service.mesh.api.serializers.base import Block, PolicySerializer
from service.mesh.models import Endpoint, EndpointGroup

# Envoy sums the weights of a locality's endpoints into a uint32.
MAX_ENDPOINT_WEIGHT = 100_000
MAX_METADATA_BYTES = 4096


def endpoint_key(endpoint: dict) -> str:
    return f"{endpoint['address']}:{endpoint['port']}"


def small_metadata(value):
    if len(str(value).encode()) > MAX_METADATA_BYTES:
        raise serializers.ValidationError(f"Keep metadata under {MAX_METADATA_BYTES} bytes.", code="too_large")
    return value


class EndpointSerializer(serializers.ModelSerializer):
    address = serializers.CharField(validators=[validation.endpoint_address])
    port = serializers.IntegerField(validators=[validation.port])
    weight = serializers.IntegerField(default=1, min_value=1, max_value=MAX_ENDPOINT_WEIGHT)
    metadata = serializers.DictField(required=False, default=dict, validators=[small_metadata])
    # The workers' verdicts (service.health.status), shown where they were
    # attached: not policy, so no part of the content hash (policy_body).
    health = EndpointVerdictSerializer(
        source="verdicts", many=True, read_only=True,
        help_text="Read-only: the endpoint's verdict under each health check of the backend services that use "
                  "the group (UNKNOWN until probed). Ignored in writes.",
    )

    class Meta:
        model = Endpoint
        fields = ["address", "port", "weight", "metadata", "health"]

    def to_internal_value(self, data):
        return dict(super().to_internal_value(data))


class EndpointRefSerializer(serializers.Serializer):
    address = serializers.CharField(validators=[validation.endpoint_address])
    port = serializers.IntegerField(validators=[validation.port])


def endpoint_list(serializer, **kwargs):
    return serializers.ListSerializer(
        child=serializer(), validators=[lambda items: validation.unique(items, endpoint_key, "endpoint")], **kwargs
    )


class Locality(Block):
    cloud = serializers.CharField(required=False, allow_blank=True, max_length=32, default="")
    region = serializers.CharField(required=False, allow_blank=True, max_length=63, default="")
    zone = serializers.CharField(required=False, allow_blank=True, max_length=63, default="")


class AwsAutoscalingGroup(Block):
    name = serializers.CharField(max_length=255)
    region = serializers.CharField(max_length=63, validators=[validation.resource_name])


class AwsEcsService(Block):
    cluster = serializers.CharField(max_length=255)
    service = serializers.CharField(max_length=255)
    region = serializers.CharField(max_length=63, validators=[validation.resource_name])


class Webhook(Block):
    url = serializers.CharField(validators=[validation.webhook_url])


class Scaler(Block):
    one_of = ("aws_autoscaling_group", "aws_ecs_service", "webhook")
    one_of_required = True

    aws_autoscaling_group = AwsAutoscalingGroup(required=False)
    aws_ecs_service = AwsEcsService(required=False)
    webhook = Webhook(required=False)


class EndpointGroupListSerializer(serializers.ListSerializer):
    def to_representation(self, data):
        page = list(data)
        attach_endpoint_verdicts(page)  # the same few queries for the whole page
        return super().to_representation(page)


class EndpointGroupSerializer(PolicySerializer):
    locality = Locality(source="*", required=False)
    max_rate_per_endpoint = serializers.FloatField(required=False, allow_null=True, min_value=0.001)
    capacity_scaler = serializers.FloatField(default=1.0, min_value=0.0, max_value=1.0)
    scaler = Scaler(required=False, allow_null=True)
    endpoints = endpoint_list(EndpointSerializer, required=False, default=list)

    link_fields = ("endpoints",)

    class Meta:
        model = EndpointGroup
        fields = (
            PolicySerializer.common_fields
            + ["locality", "max_rate_per_endpoint", "capacity_scaler", "scaler", "endpoints"]
            + PolicySerializer.metadata_fields
        )
        list_serializer_class = EndpointGroupListSerializer

    def to_representation(self, group):
        if "endpoints" not in self.omitted and not verdicts_attached(group):
            attach_endpoint_verdicts([group])
        return super().to_representation(group)

    def policy_body(self, representation: dict) -> dict:
        """Without the endpoints' verdicts: a verdict changes no ETag and
        makes no revision."""
        body = super().policy_body(representation)
        if "endpoints" in body:
            body["endpoints"] = [
                {key: value for key, value in endpoint.items() if key != "health"} for endpoint in body["endpoints"]
            ]
        return body

    def save_links(self, group, endpoints):
        """Make the group's endpoints exactly `endpoints`. The ones it keeps
        (by address and port) keep their rows, and with them the workers'
        verdicts: a write that keeps an endpoint does not make it UNKNOWN."""
        prefetch_related_objects([group], "endpoints")
        wanted = {endpoint_key(endpoint) for endpoint in endpoints}
        gone = [endpoint.pk for endpoint in group.endpoints.all() if stored_key(endpoint) not in wanted]
        if gone:
            Endpoint.objects.filter(pk__in=gone).delete()
        attach_endpoints(group, endpoints)
        group.refresh_from_db(fields=["endpoints"])  # forgets the prefetched endpoints, which changed


def stored_key(endpoint: Endpoint) -> str:
    return endpoint_key({"address": endpoint.address, "port": endpoint.port})


def verdicts_attached(group) -> bool:
    """Whether the group's endpoints carry their verdicts already (the
    list serializer attached them for its page)."""
    prefetch_related_objects([group], "endpoints")
    return all(hasattr(endpoint, "verdicts") for endpoint in group.endpoints.all())


def attach_endpoints(group, endpoints):
    """Adds endpoints, or updates the weight and metadata of ones already there."""
    Endpoint.objects.bulk_create(
        [Endpoint(tenant_id=group.tenant_id, group=group, **endpoint) for endpoint in endpoints],
        update_conflicts=True,
        unique_fields=["group", "address", "port"],
        update_fields=["weight", "metadata"],
    )


def detach_endpoints(group, refs) -> int:
    removed = 0
    for ref in refs:
        removed += group.endpoints.filter(address=ref["address"], port=ref["port"]).delete()[0]
    return removed
