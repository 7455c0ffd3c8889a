"""HTTP, gRPC and TCP routes: the rules' shapes, and the check that needs the
rest of the tenant's policy (destinations that exist in the route's meshes).
Hostnames and ports no other route of the mesh may claim are checked when the
route is committed (service.mesh.claims)."""
from rest_framework import serializers

from service import sql
from service.mesh import claims, validation
from service.mesh.api.serializers import route_actions as actions
from service.mesh.api.serializers.base import Block, PolicySerializer
from service.mesh.models import BackendService, GrpcRoute, HttpRoute, Mesh, TcpRoute
from service.mesh.validation import invalid
from service.tenants.api.fields import ReferenceNames, TenantSlugRelatedField

# What a reference to a missing object hears, whichever field resolved it.
DOES_NOT_EXIST = TenantSlugRelatedField.default_error_messages["does_not_exist"]


class HttpRouteRule(Block):
    matches = actions.block_list(actions.HttpRouteMatch, "match", max_length=32)
    action = actions.HttpRouteAction()


class GrpcRouteRule(Block):
    matches = actions.block_list(actions.GrpcRouteMatch, "match", max_length=32)
    action = actions.GrpcRouteAction()


class TcpRouteRule(Block):
    matches = actions.block_list(actions.TcpRouteMatch, "match", key=lambda m: (m["address"], m["port"]),
                                 max_length=32)
    action = actions.TcpRouteAction()

    def validate(self, attrs):
        if not attrs.get("matches"):
            raise serializers.ValidationError({"matches": ["A TCP rule needs a match with the port it listens on."]},
                                              code="required")
        return attrs


def hostnames_field():
    return serializers.ListField(
        child=serializers.CharField(validators=[validation.route_hostname]),
        min_length=1, max_length=100,
        validators=[lambda items: validation.unique(items, str, "hostname")],
    )


def referenced_services(rules):
    """(path, service name) of every backend service the rules send traffic to."""
    for i, rule in enumerate(rules):
        action = rule["action"]
        for j, destination in enumerate(action.get("destinations", [])):
            yield f"rules[{i}].action.destinations[{j}].service_name", destination["service_name"]
        mirror = action.get("request_mirror_policy")
        if mirror:
            yield f"rules[{i}].action.request_mirror_policy.destination.service_name", mirror["destination"]["service_name"]


class RouteSerializer(PolicySerializer):
    route_type = ""
    link_fields = ("meshes", "destinations")
    # Protocols of the backend services this kind of route may send traffic to.
    protocols: tuple[str, ...] = ()

    # Names, resolved in validate() with the services the rules name: one
    # statement for both.
    meshes = ReferenceNames(allow_empty=False)

    def validate_meshes(self, names):
        return validation.unique(names, str, "mesh")

    def validate(self, attrs):
        mesh_names, mesh_params = sql.among("name", attrs["meshes"])
        services = sorted({name for _, name in referenced_services(attrs["rules"])})
        service_names, service_params = sql.among("name", services)
        meshes, found = sql.select_both(Mesh, f"tenant_id = %s AND {mesh_names}", [self.tenant.pk, *mesh_params],
                                        BackendService, f"tenant_id = %s AND {service_names}",
                                        [self.tenant.pk, *service_params])
        attrs["meshes"] = self.resolve_meshes(attrs["meshes"], meshes)
        attrs["destinations"] = self.check_destinations(attrs["rules"], attrs["meshes"], found)
        return attrs

    @staticmethod
    def resolve_meshes(names, found) -> list:
        """The meshes named, in the order named."""
        by_name = {mesh.name: mesh for mesh in found}
        for name in names:
            if name not in by_name:
                raise invalid("meshes", DOES_NOT_EXIST.format(model=Mesh.kind, value=name), "does_not_exist")
        return [by_name[name] for name in names]

    def check_destinations(self, rules, meshes, found) -> list:
        found = {service.name: service for service in found}
        mesh_ids = {mesh.pk for mesh in meshes}
        for path, name in referenced_services(rules):
            service = found.get(name)
            if service is None:
                raise invalid(path, f"There is no backend service named '{name}'.", "does_not_exist")
            if service.protocol not in self.protocols:
                raise invalid(path, f"backend-services/{name} speaks {service.protocol}; a {self.route_type} route "
                                    f"needs one of {', '.join(self.protocols)}.", "protocol_mismatch")
            if {service.mesh_id} != mesh_ids:
                raise invalid(path, f"backend-services/{name} is in mesh '{service.mesh.name}', but this route is "
                                    f"attached to {', '.join(sorted(m.name for m in meshes))}; a route's "
                                    "destinations must be in every mesh it is attached to.", "wrong_mesh")
        return list(found.values())

    def update(self, route, validated):
        # A route's destination rows are always the services its rules name,
        # and its claims what its rules or hostnames claim in its meshes, so
        # what it had tells whether those rows change, without a query.
        self.destinations_before = {name for _, name in referenced_services(route.rules)}
        self.claims_before = claims.claimed(route, {mesh.pk for mesh in route.meshes.all()})
        return super().update(route, validated)

    def insert(self, route, links):
        # Both links are plain many-to-many rows: they go in with the route.
        sql.insert_linked(route, links)
        for relation, targets in links.items():
            sql.remember_prefetched(route, getattr(route, relation), targets)  # in their order, as a read gives them

    def save_links(self, route, meshes, destinations):
        self.replace_links(route, "meshes", meshes)
        if self.destinations_before == {service.name for service in destinations}:
            sql.remember_prefetched(route, route.destinations, destinations)
        else:
            self.replace_links(route, "destinations", destinations)


class HostnameRouteSerializer(RouteSerializer):
    """HTTP and gRPC routes share their meshes' virtual hosts, where Envoy
    refuses a domain that appears twice."""

    hostnames = hostnames_field()


class HttpRouteSerializer(HostnameRouteSerializer):
    route_type = "HTTP"
    protocols = ("HTTP", "HTTP2", "GRPC")
    rules = HttpRouteRule(many=True, min_length=1, max_length=100)

    class Meta:
        model = HttpRoute
        fields = PolicySerializer.common_fields + ["meshes", "hostnames", "rules"] + PolicySerializer.metadata_fields


class GrpcRouteSerializer(HostnameRouteSerializer):
    route_type = "gRPC"
    protocols = ("GRPC", "HTTP2")
    rules = GrpcRouteRule(many=True, min_length=1, max_length=100)

    class Meta:
        model = GrpcRoute
        fields = PolicySerializer.common_fields + ["meshes", "hostnames", "rules"] + PolicySerializer.metadata_fields


class TcpRouteSerializer(RouteSerializer):
    route_type = "TCP"
    protocols = ("TCP",)
    rules = TcpRouteRule(many=True, min_length=1, max_length=100)

    class Meta:
        model = TcpRoute
        fields = PolicySerializer.common_fields + ["meshes", "rules"] + PolicySerializer.metadata_fields

