from rest_framework import serializers

from service.mesh import validation
from service.mesh.api.serializers.base import Block, PolicySerializer, duration, percentage, uint32
from service.mesh.validation import invalid
from service.mesh.models import Backend, BackendService, EndpointGroup, HealthCheck, Mesh
from service.tenants.api.fields import TenantSlugRelatedField

PROTOCOLS = ["HTTP", "HTTP2", "GRPC", "TCP"]
LOCALITY_LB_POLICIES = ["ROUND_ROBIN", "LEAST_REQUEST", "RING_HASH", "RANDOM", "MAGLEV"]
SESSION_AFFINITIES = ["NONE", "CLIENT_IP", "HTTP_COOKIE", "HEADER_FIELD", "GENERATED_COOKIE"]
HASHING_POLICIES = ("RING_HASH", "MAGLEV")
# Envoy's ring hash refuses rings larger than 8M entries.
MAX_RING_SIZE = 8_388_608


class BackendBlock(Block):
    endpoint_group = TenantSlugRelatedField(queryset=EndpointGroup.objects.all())
    balancing_mode = serializers.ChoiceField(["RATE", "UTILIZATION", "CONNECTION"], default="RATE")
    capacity_scaler = serializers.FloatField(default=1.0, min_value=0.0, max_value=1.0)
    preference = serializers.ChoiceField(["DEFAULT", "PREFERRED"], default="DEFAULT")
    max_rate_per_endpoint = serializers.FloatField(required=False, allow_null=True, min_value=0.001)


class CircuitBreakers(Block):
    max_connections = uint32(minimum=1, required=False)
    max_pending_requests = uint32(minimum=1, required=False)
    max_requests = uint32(minimum=1, required=False)
    max_retries = uint32(minimum=0, required=False)
    max_requests_per_connection = uint32(minimum=1, required=False)


class OutlierDetection(Block):
    consecutive_errors = uint32(minimum=1, required=False)
    consecutive_gateway_failure = uint32(minimum=1, required=False)
    interval_sec = duration(required=False)
    base_ejection_time_sec = duration(required=False)
    max_ejection_percent = percentage(required=False)
    enforcing_consecutive_errors = percentage(required=False)
    enforcing_consecutive_gateway_failure = percentage(required=False)
    enforcing_success_rate = percentage(required=False)
    success_rate_minimum_hosts = uint32(required=False)
    success_rate_request_volume = uint32(required=False)
    success_rate_stdev_factor = uint32(required=False)


class HttpCookie(Block):
    name = serializers.CharField(max_length=256, validators=[validation.header_value])
    path = serializers.CharField(required=False, validators=[validation.full_path])
    ttl_sec = duration(required=False, minimum=0)


class ConsistentHash(Block):
    one_of = ("http_header_name", "http_cookie", "use_source_ip")

    http_header_name = serializers.CharField(required=False, validators=[validation.header_name])
    http_cookie = HttpCookie(required=False)
    use_source_ip = serializers.BooleanField(required=False)
    minimum_ring_size = serializers.IntegerField(required=False, min_value=1, max_value=MAX_RING_SIZE)


class Failover(Block):
    # Waterfall: the proxy's own region first, then the other regions of its
    # cloud, then the other clouds; DISABLED keeps all localities at one priority.
    mode = serializers.ChoiceField(["REGION_THEN_CLOUD", "DISABLED"], default="REGION_THEN_CLOUD")
    # Share of healthy endpoints below which a locality starts spilling over.
    failover_ratio = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)
    drop_traffic_if_unhealthy = serializers.BooleanField(default=False)


class BackendServiceSerializer(PolicySerializer):
    mesh = TenantSlugRelatedField(queryset=Mesh.objects.all())
    protocol = serializers.ChoiceField(PROTOCOLS, default="HTTP")
    health_checks = TenantSlugRelatedField(queryset=HealthCheck.objects.all(), many=True, required=False, default=list)
    backends = BackendBlock(many=True, required=False, default=list, max_length=100)
    locality_lb_policy = serializers.ChoiceField(LOCALITY_LB_POLICIES, default="ROUND_ROBIN")
    timeout_sec = duration(default=30, maximum=86400)
    session_affinity = serializers.ChoiceField(SESSION_AFFINITIES, default="NONE")
    circuit_breakers = CircuitBreakers(required=False, allow_null=True)
    outlier_detection = OutlierDetection(required=False, allow_null=True)
    consistent_hash = ConsistentHash(required=False, allow_null=True)
    failover = Failover(required=False, allow_null=True)

    link_fields = ("health_checks", "backends")

    class Meta:
        model = BackendService
        fields = (
            PolicySerializer.common_fields
            + ["mesh", "protocol", "health_checks", "backends", "locality_lb_policy", "timeout_sec",
               "session_affinity", "circuit_breakers", "outlier_detection", "consistent_hash", "failover"]
            + PolicySerializer.metadata_fields
        )

    def validate_mesh(self, mesh):
        if self.instance is not None and mesh.pk != self.instance.mesh_id:
            raise serializers.ValidationError(
                "A backend service cannot move to another mesh; create one there instead.", code="immutable"
            )
        return mesh

    def validate_health_checks(self, health_checks):
        # Traffic Director's rule too: one health check verdict per endpoint.
        if len(health_checks) > 1:
            raise serializers.ValidationError("A backend service takes at most one health check.", code="too_many")
        return health_checks

    def validate_backends(self, backends):
        return validation.unique(backends, lambda backend: backend["endpoint_group"].name, "endpoint group")

    def validate(self, attrs):
        affinity = attrs["session_affinity"]
        hashing = attrs.get("consistent_hash")
        if (affinity != "NONE" or hashing) and attrs["locality_lb_policy"] not in HASHING_POLICIES:
            raise invalid(
                "locality_lb_policy",
                "Session affinity and consistent hashing need locality_lb_policy RING_HASH or MAGLEV.",
                "hashing_policy_required",
            )
        if affinity == "HEADER_FIELD" and not (hashing or {}).get("http_header_name"):
            raise invalid("consistent_hash.http_header_name", "HEADER_FIELD affinity hashes this header; name it.",
                          "required")
        if affinity == "HTTP_COOKIE" and not (hashing or {}).get("http_cookie"):
            raise invalid("consistent_hash.http_cookie", "HTTP_COOKIE affinity hashes this cookie; describe it.",
                          "required")
        if attrs["protocol"] == "TCP" and affinity in ("HTTP_COOKIE", "HEADER_FIELD", "GENERATED_COOKIE"):
            raise invalid("session_affinity", f"{affinity} affinity needs an HTTP protocol, not TCP.",
                          "protocol_mismatch")
        return attrs

    def save_links(self, service, health_checks, backends):
        service.health_checks.set(health_checks)
        service.backends.all().delete()
        Backend.objects.bulk_create(
            [Backend(backend_service=service, position=position, **backend) for position, backend in enumerate(backends)]
        )
