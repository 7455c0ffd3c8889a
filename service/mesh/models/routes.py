"""HTTP, gRPC and TCP routes share one table: they attach to meshes and point
at backend services the same way, and differ only in the shape of their rules,
which their serializers own."""
from django.db import models

from service.mesh.models.base import Link, PolicyResource
from service.tenants.scoping import TenantQuerySet


class RouteType(models.TextChoices):
    HTTP = "http"
    GRPC = "grpc"
    TCP = "tcp"


class Route(PolicyResource):
    type = models.CharField(max_length=8, choices=RouteType.choices)
    meshes = models.ManyToManyField("mesh.Mesh", through="RouteMesh", related_name="routes")
    hostnames = models.JSONField(default=list, blank=True)
    rules = models.JSONField(default=list)
    # Every backend service the rules name, kept as rows so that they are protected.
    destinations = models.ManyToManyField(
        "mesh.BackendService", through="RouteDestination", related_name="routes"
    )

    class Meta(PolicyResource.Meta):
        constraints = [
            models.UniqueConstraint(fields=["tenant", "type", "name"], name="mesh_route_unique_name"),
        ]

    @property
    def kind(self):
        return f"{self.type}-routes"

    def related_tenant_objects(self):
        yield from super().related_tenant_objects()
        yield from self.meshes.all()
        yield from self.destinations.all()


class RouteMesh(Link):
    route = models.ForeignKey(Route, on_delete=models.CASCADE)
    mesh = models.ForeignKey("mesh.Mesh", on_delete=models.PROTECT, related_name="+")

    @property
    def referrer(self):
        return self.route


class RouteDestination(Link):
    route = models.ForeignKey(Route, on_delete=models.CASCADE)
    backend_service = models.ForeignKey("mesh.BackendService", on_delete=models.PROTECT, related_name="+")

    @property
    def referrer(self):
        return self.route


class HostnameClaim(models.Model):
    """A hostname an HTTP or gRPC route serves in one of its meshes. Envoy
    refuses a domain that appears twice among a listener's virtual hosts, so
    a mesh's hostnames are unique, enforced by the database (see claims.py)."""

    mesh = models.ForeignKey("mesh.Mesh", on_delete=models.CASCADE, related_name="+")
    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="hostname_claims")
    # A DNS name (253) with an optional ":port".
    hostname = models.CharField(max_length=260)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["mesh", "hostname"], name="unique_hostname_claim")]


class PortClaim(models.Model):
    """A port a TCP route listens on in one of its meshes: one listener, one route."""

    mesh = models.ForeignKey("mesh.Mesh", on_delete=models.CASCADE, related_name="+")
    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="port_claims")
    port = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["mesh", "port"], name="unique_port_claim")]


class RouteOfType(models.Manager.from_queryset(TenantQuerySet)):
    def __init__(self, route_type):
        super().__init__()
        self.route_type = route_type

    def get_queryset(self):
        return super().get_queryset().filter(type=self.route_type)


def route_proxy(route_type: str):
    """A proxy model that sees and creates only routes of one type."""

    class Meta:
        proxy = True

    def __init__(self, *args, **kwargs):
        if not args:  # made in code, not loaded from a row (which passes every column in order)
            kwargs.setdefault("type", route_type)
        Route.__init__(self, *args, **kwargs)

    def save(self, *args, **kwargs):
        self.type = route_type
        Route.save(self, *args, **kwargs)

    name = f"{route_type.capitalize()}Route"
    return type(
        name,
        (Route,),
        {"__module__": __name__, "Meta": Meta, "objects": RouteOfType(route_type),
         "__init__": __init__, "save": save,
         "kind": f"{route_type}-routes"},
    )


HttpRoute = route_proxy(RouteType.HTTP)
GrpcRoute = route_proxy(RouteType.GRPC)
TcpRoute = route_proxy(RouteType.TCP)
