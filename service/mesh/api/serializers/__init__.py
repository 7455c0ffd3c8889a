from service.mesh.api.serializers.autoscaling import AutoscalingPolicySerializer
from service.mesh.api.serializers.backend_services import BackendServiceSerializer
from service.mesh.api.serializers.endpoint_groups import EndpointGroupSerializer
from service.mesh.api.serializers.health_checks import HealthCheckSerializer
from service.mesh.api.serializers.meshes import MeshSerializer
from service.mesh.api.serializers.routes import GrpcRouteSerializer, HttpRouteSerializer, TcpRouteSerializer

# The serializer of each kind: the API's representation, and its validation.
BY_KIND = {
    serializer.Meta.model.kind: serializer
    for serializer in (
        MeshSerializer, HealthCheckSerializer, EndpointGroupSerializer, BackendServiceSerializer,
        HttpRouteSerializer, GrpcRouteSerializer, TcpRouteSerializer, AutoscalingPolicySerializer,
    )
}
