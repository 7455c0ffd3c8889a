from rest_framework import serializers

from service.mesh import validation
from service.mesh.api.serializers.base import PolicySerializer
from service.mesh.api.serializers.routes import tcp_ports
from service.mesh.models import Mesh, TcpRoute


class MeshSerializer(PolicySerializer):
    interception_port = serializers.IntegerField(default=15001, validators=[validation.port])
    revision = serializers.IntegerField(read_only=True)

    class Meta:
        model = Mesh
        fields = PolicySerializer.common_fields + ["interception_port", "revision"] + PolicySerializer.metadata_fields

    def validate_interception_port(self, port):
        if self.instance is not None:
            for route in TcpRoute.objects.filter(meshes=self.instance):
                if port in tcp_ports(route.rules):
                    raise serializers.ValidationError(f"tcp-routes/{route.name} listens on port {port}.",
                                                      code="port_in_use")
        return port
