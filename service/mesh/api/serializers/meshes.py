from rest_framework import serializers

from service.mesh import claims, validation
from service.mesh.api.serializers.base import PolicySerializer
from service.mesh.models import Mesh


class MeshSerializer(PolicySerializer):
    interception_port = serializers.IntegerField(default=15001, validators=[validation.port])
    revision = serializers.IntegerField(read_only=True)

    class Meta:
        model = Mesh
        fields = PolicySerializer.common_fields + ["interception_port", "revision"] + PolicySerializer.metadata_fields

    def validate_interception_port(self, port):
        # An update holds the mesh's row lock (the viewset's queryset), under
        # which TCP routes of the mesh make their claims, so none can slip in.
        route = claims.port_holder(self.instance, port) if self.instance is not None else None
        if route is not None:
            raise serializers.ValidationError(f"tcp-routes/{route.name} listens on port {port}.", code="port_in_use")
        return port
