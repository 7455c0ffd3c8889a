from rest_framework import serializers

from service.mesh import validation
from service.mesh.api.serializers.base import Block, PolicySerializer, duration
from service.mesh.models import HealthCheck
from service.mesh.models.health_checks import PROTOCOL_BLOCKS


def probed_port():
    """The port probed: this one on every endpoint, or, left out, each
    endpoint's own serving port (GCP's USE_SERVING_PORT)."""
    return serializers.IntegerField(
        required=False, validators=[validation.port],
        help_text="The port probed on every endpoint; left out, each endpoint's own port.",
    )


class HttpHealthCheck(Block):
    port = probed_port()
    request_path = serializers.CharField(default="/", validators=[validation.full_path])
    host = serializers.CharField(required=False, validators=[validation.route_hostname])
    # A substring the response body must contain to count as healthy.
    response = serializers.CharField(required=False, max_length=1024)


def verify_tls():
    # Left out: the endpoint's certificate is not checked (as Envoy's and
    # GCP's health checks do not): endpoints often serve self-signed ones.
    return serializers.BooleanField(
        required=False, help_text="Verify the endpoint's TLS certificate; left out or false, any certificate "
                                  "is accepted.",
    )


class HttpsHealthCheck(HttpHealthCheck):
    verify_tls = verify_tls()


class Http2HealthCheck(HttpHealthCheck):
    # Left out: prior-knowledge h2c in plain text, as the proxies reach HTTP2 backends.
    tls = serializers.BooleanField(
        required=False, help_text="HTTP/2 over TLS (ALPN h2); left out or false, h2c (plain text).",
    )
    verify_tls = verify_tls()

    def validate(self, attrs):
        if attrs.get("verify_tls") and not attrs.get("tls"):
            raise serializers.ValidationError(
                {"verify_tls": [serializers.ErrorDetail(
                    "There is no certificate to verify without TLS: set tls: true too.", code="verify_without_tls"
                )]}
            )
        return super().validate(attrs)


class TcpHealthCheck(Block):
    port = probed_port()
    # Sent and expected byte for byte: a line protocol's "PING\r\n" keeps its line end.
    request = serializers.CharField(required=False, max_length=1024, trim_whitespace=False)
    response = serializers.CharField(required=False, max_length=1024, trim_whitespace=False)


class GrpcHealthCheck(Block):
    port = probed_port()
    grpc_service_name = serializers.CharField(required=False, allow_blank=True, max_length=1024)


class HealthCheckSerializer(PolicySerializer):
    check_interval_sec = duration(default=5, minimum=1, maximum=300)
    timeout_sec = duration(default=5, minimum=1, maximum=300)
    healthy_threshold = serializers.IntegerField(default=2, min_value=1, max_value=10)
    unhealthy_threshold = serializers.IntegerField(default=2, min_value=1, max_value=10)
    source_regions = serializers.ListField(
        child=serializers.CharField(validators=[validation.resource_name]),
        required=False,
        default=list,
        max_length=8,
        validators=[lambda items: validation.unique(items, str, "region")],
    )
    http_health_check = HttpHealthCheck(required=False, allow_null=True)
    https_health_check = HttpsHealthCheck(required=False, allow_null=True)
    http2_health_check = Http2HealthCheck(required=False, allow_null=True)
    tcp_health_check = TcpHealthCheck(required=False, allow_null=True)
    grpc_health_check = GrpcHealthCheck(required=False, allow_null=True)

    class Meta:
        model = HealthCheck
        fields = (
            PolicySerializer.common_fields
            + ["check_interval_sec", "timeout_sec", "healthy_threshold", "unhealthy_threshold", "source_regions"]
            + list(PROTOCOL_BLOCKS)
            + PolicySerializer.metadata_fields
        )

    def validate(self, attrs):
        present = [name for name in PROTOCOL_BLOCKS if attrs.get(name) is not None]  # {} is a block: all defaults
        if len(present) != 1:
            raise serializers.ValidationError(
                f"Set exactly one of {', '.join(PROTOCOL_BLOCKS)}; this sets {len(present)}.", code="protocol_block"
            )
        if attrs["timeout_sec"] > attrs["check_interval_sec"]:
            raise serializers.ValidationError(
                {"timeout_sec": [serializers.ErrorDetail(
                    "A probe's timeout cannot be longer than the interval between probes.", code="timeout_too_long"
                )]}
            )
        return attrs

