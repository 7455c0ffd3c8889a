from service.mesh.models.autoscaling import AutoscalingPolicy
from service.mesh.models.backend_services import Backend, BackendService, BackendServiceHealthCheck
from service.mesh.models.endpoint_groups import Endpoint, EndpointGroup
from service.mesh.models.health_checks import HealthCheck
from service.mesh.models.meshes import Mesh
from service.mesh.models.revisions import Change, ResourceVersion, Revision
from service.mesh.models.routes import (
    GrpcRoute, HostnameClaim, HttpRoute, PortClaim, Route, RouteDestination, RouteMesh, RouteType, TcpRoute,
)

__all__ = [
    "AutoscalingPolicy", "Backend", "BackendService", "BackendServiceHealthCheck", "Change", "Endpoint",
    "EndpointGroup", "GrpcRoute", "HealthCheck", "HostnameClaim", "HttpRoute", "Mesh", "PortClaim", "ResourceVersion",
    "Revision", "Route", "RouteDestination", "RouteMesh", "RouteType", "TcpRoute",
]
