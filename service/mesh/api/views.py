"""The policy endpoints: a few declarative lines each on PolicyViewSet, which
adds ETags, If-Match and the revision bookkeeping to the tenant-scoped base."""
from django.db import transaction
from django.utils.functional import cached_property
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response

from service import sql
from service.health.api.serializers import ServiceHealthSerializer
from service.health.status import service_health
from service.mesh import revisions
from service.mesh import rollback as rollbacks
from service.mesh.api import serializers as api
from service.mesh.api.serializers.endpoint_groups import (
    EndpointRefSerializer, EndpointSerializer, attach_endpoints, detach_endpoints, endpoint_list,
)
from service.mesh.models import (
    AutoscalingPolicy, BackendService, Change, EndpointGroup, GrpcRoute, HealthCheck, HttpRoute, Mesh, Revision,
    TcpRoute,
)
from service.mesh.services import ChangeSet, diff, meshes_of, resource_key
from service.tenants import quotas
from service.tenants.api.errors import PreconditionFailed
from service.tenants.api.viewsets import TenantScopedViewSet


def actor(request) -> str:
    key = request.auth
    user = f"{key.created_by.username} " if key.created_by else ""
    return f"{user}(api key '{key.name}')".strip()


def quoted(etag: str) -> str:
    return f'"{etag}"'


class PolicyViewSet(TenantScopedViewSet):
    def get_object(self):
        instance = super().get_object()
        self.check_if_match(instance)
        return instance

    @transaction.atomic
    def update(self, request, *args, **kwargs):
        """PUT replaces; PATCH replaces the top-level fields it names. Both are
        validated as a whole resource, so what is stored is always complete."""
        instance = self.get_object()
        serializer = self.get_serializer(instance, data=request.data)
        if kwargs.get("partial"):
            if not isinstance(request.data, dict):
                raise serializers.ValidationError("Send a JSON object of the fields to change.", code="invalid")
            serializer.initial_data = {**serializer.represent_except(instance, request.data), **request.data}
        serializer.is_valid(raise_exception=True)
        self.perform_update(serializer)
        return Response(serializer.data)

    def check_if_match(self, instance):
        wanted = self.request.headers.get("If-Match")
        if self.request.method in ("GET", "HEAD", "OPTIONS") or wanted is None:
            return
        accepted = {tag.strip().removeprefix("W/") for tag in wanted.split(",")}
        if "*" not in accepted and quoted(instance.version) not in accepted:
            raise PreconditionFailed()

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        etag = response.data.get("etag") if isinstance(response.data, dict) else None
        # One resource's answer, including a create's (which comes from the list route).
        if etag and (self.detail or self.action == "create"):
            response["ETag"] = quoted(etag)
        return response

    def snapshot(self, instance):
        return meshes_of(instance)

    def verify_scope(self, instance):
        """What the write refers to is checked here, in memory (the serializer
        left it loaded); that the row itself is the tenant's, by the ETag's
        UPDATE in `written` (service.mesh.services.stamp), which sees only the
        tenant's rows: the re-check costs no query of its own."""
        if not instance.belongs_wholly_to(self.tenant):
            raise exceptions.PermissionDenied("The change would reach outside this tenant.")

    def written(self, action, instance, before, serializer=None):
        self.changes(action, instance, before, serializer).commit()

    def changes(self, action, instance, before, serializer=None) -> ChangeSet:
        changes = ChangeSet(self.tenant, actor(self.request), action, resource_key(instance), lone=True)
        if action == "delete":
            changes.deleted(instance, before)
        else:
            changes.saved(instance, before or set(), serializer)
        if action == "create":
            changes.ensure_room(instance.quota, adding=1)
        return changes


class MeshViewSet(PolicyViewSet):
    queryset = Mesh.objects.all()
    serializer_class = api.MeshSerializer


class HealthCheckViewSet(PolicyViewSet):
    queryset = HealthCheck.objects.all()
    serializer_class = api.HealthCheckSerializer


class EndpointList(serializers.Serializer):
    endpoints = endpoint_list(EndpointSerializer, allow_empty=False)


class EndpointRefList(serializers.Serializer):
    endpoints = endpoint_list(EndpointRefSerializer, allow_empty=False)


class EndpointGroupViewSet(PolicyViewSet):
    queryset = EndpointGroup.objects.prefetch_related("endpoints")
    serializer_class = api.EndpointGroupSerializer

    def changes(self, action, instance, before, serializer=None) -> ChangeSet:
        changes = super().changes(action, instance, before, serializer)
        if action != "delete":
            changes.ensure_room("endpoints", adding=0)
        return changes

    @extend_schema(request=EndpointList, responses=api.EndpointGroupSerializer)
    @action(detail=True, methods=["post"])
    @transaction.atomic
    def attach(self, request, name=None):
        """Adds endpoints to the group, or updates the weight and metadata of
        ones it has (by address and port)."""
        return self.change_endpoints("attach", EndpointList, attach_endpoints)

    @extend_schema(request=EndpointRefList, responses=api.EndpointGroupSerializer)
    @action(detail=True, methods=["post"])
    @transaction.atomic
    def detach(self, request, name=None):
        """Removes endpoints (by address and port); ones not there are ignored."""
        return self.change_endpoints("detach", EndpointRefList, detach_endpoints)

    def change_endpoints(self, action, body_serializer, apply):
        group = self.get_object()
        body = body_serializer(data=self.request.data)
        body.is_valid(raise_exception=True)
        apply(group, body.validated_data["endpoints"])
        self.written(action, group, meshes_of(group))
        return Response(self.get_serializer(EndpointGroup.objects.get(pk=group.pk)).data)


class BackendServiceViewSet(PolicyViewSet):
    queryset = BackendService.objects.select_related("mesh").prefetch_related("health_checks", "backends__endpoint_group")
    serializer_class = api.BackendServiceSerializer

    @action(detail=True, methods=["get"], serializer_class=ServiceHealthSerializer)
    def health(self, request, name=None):
        """The service's health (Traffic Director's getHealth): each
        endpoint's verdict, and per source region its state, last probe,
        latency and error; and whether the service fails open (every
        endpoint UNHEALTHY, so proxies get them all)."""
        return Response(self.get_serializer(service_health(self.get_object())).data)


class RouteViewSet(PolicyViewSet):
    def get_object(self):
        """A write finds and locks its route, and reads its meshes, by
        prebuilt statements (service.sql): routes are the writes that come by
        the hundred, and building the ORM's two queries cost more CPU than the
        rest of an update's reads together (docs/performance.md)."""
        if self.request.method in permissions.SAFE_METHODS:
            return super().get_object()
        model = self.queryset.model
        found = sql.select(model, f"tenant_id = %s AND type = %s AND name = %s {sql.row_lock()}",
                           [self.tenant.pk, model.objects.route_type, self.kwargs[self.lookup_field]])
        route = next(iter(found), None)  # at most one: (tenant, type, name) is unique
        if route is None:
            raise exceptions.NotFound()
        sql.prefetch(route, "meshes")
        self.check_object_permissions(self.request, route)
        self.check_if_match(route)
        return route


class HttpRouteViewSet(RouteViewSet):
    queryset = HttpRoute.objects.prefetch_related("meshes")
    serializer_class = api.HttpRouteSerializer


class GrpcRouteViewSet(RouteViewSet):
    queryset = GrpcRoute.objects.prefetch_related("meshes")
    serializer_class = api.GrpcRouteSerializer


class TcpRouteViewSet(RouteViewSet):
    queryset = TcpRoute.objects.prefetch_related("meshes")
    serializer_class = api.TcpRouteSerializer


class AutoscalingPolicyViewSet(PolicyViewSet):
    queryset = AutoscalingPolicy.objects.select_related("target")
    serializer_class = api.AutoscalingPolicySerializer


class RevisionListSerializer(serializers.ListSerializer):
    def to_representation(self, data):
        page = list(data)
        revisions.attach_manifests(page)  # one rebuild per mesh for the whole page
        return super().to_representation(page)


class RevisionSerializer(serializers.ModelSerializer):
    mesh = serializers.CharField(source="mesh.name")
    actor = serializers.CharField(source="change.actor")
    action = serializers.CharField(source="change.action")
    resource = serializers.SerializerMethodField()
    resources = serializers.JSONField(source="change.resources")
    manifest = serializers.SerializerMethodField()

    class Meta:
        model = Revision
        fields = ["mesh", "number", "created_at", "actor", "action", "resource", "resources", "manifest"]
        list_serializer_class = RevisionListSerializer

    def get_resource(self, revision) -> str:
        return f"{revision.change.kind}/{revision.change.name}"

    def get_manifest(self, revision) -> dict[str, str]:
        if not hasattr(revision, "manifest"):
            revisions.attach_manifests([revision])
        return revision.manifest


class ChangeSerializer(serializers.ModelSerializer):
    class Meta:
        model = Change
        fields = ["id", "created_at", "actor", "action", "kind", "name", "resources"]


class RevisionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The history of one mesh's configuration: every revision, the diff
    between two, and rollback to one (which makes a new revision)."""

    serializer_class = RevisionSerializer
    lookup_field = "number"
    lookup_value_regex = "[0-9]+"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Revision.objects.none()
        return Revision.objects.filter(mesh=self.mesh).select_related("mesh", "change")

    @cached_property
    def mesh(self):
        return get_object_or_404(Mesh.objects.filter(tenant=self.request.tenant), name=self.kwargs["mesh_name"])

    @extend_schema(
        parameters=[OpenApiParameter("against", int, description="The older revision (default: the one before).")],
        responses=dict,
    )
    @action(detail=True, methods=["get"])
    def diff(self, request, mesh_name=None, number=None):
        new = self.get_object()
        against = request.query_params.get("against", str(new.number - 1))
        if not against.isdigit():
            raise serializers.ValidationError({"against": ["Give a revision number."]}, code="invalid")
        old = get_object_or_404(self.get_queryset(), number=int(against))
        return Response(diff(old, new))

    @extend_schema(request=None, responses=RevisionSerializer)
    @action(detail=True, methods=["post"])
    @transaction.atomic
    def rollback(self, request, mesh_name=None, number=None):
        # The tenant's lock keeps creates out while the rollback reads and
        # rewrites the mesh; its meshes it locks at commit, as every write does.
        # What it restores is not checked against the quota, only counted by
        # the next create's check.
        quotas.lock_tenant_uncounted(request.tenant)
        mesh = Mesh.objects.get(pk=self.get_object().mesh_id)
        revision = rollbacks.rollback(mesh, int(number), actor(request))
        return Response(self.get_serializer(revision).data, status=201)


class ChangeViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Every committed write of the tenant, newest first: who, when, what."""

    serializer_class = ChangeSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Change.objects.none()
        return Change.objects.filter(tenant=self.request.tenant)
