"""`proxies`: read-only, what every Envoy and gRPC client of the tenant has."""
from django.db.models import Prefetch
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view

from service.tenants.api.errors import Conflict
from service.tenants.api.parsers import unstorable
from service.tenants.api.viewsets import TenantScopedViewSet
from service.xds.api.serializers import ProxySerializer
from service.xds.models import Proxy, ProxyTypeStatus

MESH = OpenApiParameter("mesh", str, description="Only the proxies of this mesh.")
CONNECTED = OpenApiParameter("connected", bool, description="Only connected (true) or disconnected (false) proxies.")


@extend_schema_view(list=extend_schema(parameters=[MESH, CONNECTED]), retrieve=extend_schema(parameters=[MESH]))
class ProxyViewSet(TenantScopedViewSet):
    """Every proxy that has connected: node id, mesh, locality, the replica
    holding its stream, and per xDS type the version sent, the version ACKed,
    or the error of its last NACK."""

    queryset = Proxy.objects.select_related("mesh").prefetch_related(
        Prefetch("xds", queryset=ProxyTypeStatus.objects.order_by("type_url"))).order_by("mesh__name", "name")
    serializer_class = ProxySerializer
    http_method_names = ["get", "head", "options"]

    def get_queryset(self):
        queryset = super().get_queryset()
        mesh = self.request.query_params.get("mesh")
        if mesh is not None:
            queryset = queryset.filter(mesh__name=mesh) if not unstorable(mesh) else queryset.none()
        connected = self.request.query_params.get("connected", "").lower()
        if connected in ("true", "false"):
            queryset = queryset.filter(disconnected_at__isnull=connected == "true")
        return queryset

    def get_object(self):
        # A node name is unique per mesh, not per tenant.
        matches = list(self.filter_queryset(self.get_queryset()).filter(name=self.kwargs["name"])[:2])
        if len(matches) > 1:
            raise Conflict(f"Several meshes have a proxy named '{self.kwargs['name']}'; name one with ?mesh=.")
        if not matches:
            raise Http404
        self.check_object_permissions(self.request, matches[0])
        return matches[0]
