from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from service.xds.models import Proxy, ProxyTypeStatus


class NackSerializer(serializers.Serializer):
    message = serializers.CharField(source="error_message")
    nonce = serializers.CharField(source="error_nonce")
    at = serializers.DateTimeField(source="error_at")


class ProxyTypeStatusSerializer(serializers.ModelSerializer):
    type = serializers.SerializerMethodField()
    nack = serializers.SerializerMethodField()

    class Meta:
        model = ProxyTypeStatus
        fields = ["type", "type_url", "version_sent", "sent_at", "version_acked", "acked_at", "nack"]

    def get_type(self, status) -> str:
        """The message type's short name: Cluster, ClusterLoadAssignment, Listener, RouteConfiguration."""
        return status.type_url.rsplit(".", 1)[-1]

    @extend_schema_field(NackSerializer(allow_null=True))
    def get_nack(self, status):
        """The last NACK of this type (until an ACK follows), with the proxy's error message."""
        return NackSerializer(status).data if status.error_message else None


class LocalitySerializer(serializers.Serializer):
    cloud = serializers.CharField()
    region = serializers.CharField()
    zone = serializers.CharField()


class ProxySerializer(serializers.ModelSerializer):
    mesh = serializers.SlugRelatedField(slug_field="name", read_only=True)
    locality = serializers.SerializerMethodField()
    connected = serializers.SerializerMethodField()
    xds = ProxyTypeStatusSerializer(many=True, read_only=True)

    class Meta:
        model = Proxy
        fields = ["name", "node_id", "mesh", "kind", "user_agent", "locality", "replica", "connected",
                  "connected_at", "last_seen_at", "disconnected_at", "xds"]
        read_only_fields = fields

    @extend_schema_field(LocalitySerializer)
    def get_locality(self, proxy):
        return {"cloud": proxy.cloud, "region": proxy.region, "zone": proxy.zone}

    def get_connected(self, proxy) -> bool:
        return proxy.disconnected_at is None
