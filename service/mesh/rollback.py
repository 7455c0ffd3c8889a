"""Rolling a mesh back to an earlier revision: a new change that makes the
mesh's configuration what the revision recorded, in one transaction.

Resources shared with other meshes (health checks, endpoint groups) are
restored but never deleted; an endpoint group's endpoints are left as they are,
because workloads attach and detach them, not the policy's authors."""
from rest_framework import serializers

from service.mesh.models import BackendService, Mesh, Route
from service.mesh.revisions import manifest, manifests
from service.mesh.services import ChangeSet, bodies, meshes_of, serializer_for
from service.tenants.api.errors import Conflict, flatten, summary

RESTORE_ORDER = [
    "meshes", "health-checks", "endpoint-groups", "backend-services",
    "http-routes", "grpc-routes", "tcp-routes", "autoscaling-policies",
]
ROUTE_KINDS = ("http-routes", "grpc-routes", "tcp-routes")


def of_kind(keys, kind):
    return sorted(key.split("/", 1)[1] for key in keys if key.split("/", 1)[0] == kind)


def rollback(mesh: Mesh, number: int, actor: str):
    target = manifests(mesh.pk, [number])[number]
    current = manifest(mesh)
    changes = ChangeSet(mesh.tenant, actor, "rollback", f"{mesh.kind}/{mesh.name}")
    changes.mesh_ids.add(mesh.pk)  # a rollback is a revision even when nothing differs
    for kind in ROUTE_KINDS:
        for name in of_kind(current.keys() - target.keys(), kind):
            detach_route(mesh, Route.objects.get(tenant=mesh.tenant, type=kind.split("-")[0], name=name), changes)
    stored = bodies(mesh.tenant, target.values())
    differing = [key for key in target if current.get(key) != target[key]]
    for kind in RESTORE_ORDER:
        for name in of_kind(differing, kind):
            restore(mesh.tenant, kind, name, stored[target[f"{kind}/{name}"]], changes)
    for name in of_kind(current.keys() - target.keys(), BackendService.kind):
        service = BackendService.objects.get(tenant=mesh.tenant, name=name)
        before = meshes_of(service)
        service.delete()
        changes.deleted(service, before)
    revisions = changes.commit()
    return next(revision for revision in revisions if revision.mesh_id == mesh.pk)


def detach_route(mesh, route, changes):
    before = meshes_of(route)
    if len(before) > 1:
        route.meshes.remove(mesh)
        changes.saved(route, before)
    else:
        route.delete()
        changes.deleted(route, before)


def restore(tenant, kind, name, body, changes):
    serializer_class = serializer_for(kind)
    instance = serializer_class.Meta.model.objects.filter(tenant=tenant, name=name).first()
    if instance is not None and kind == "endpoint-groups":
        body = {**body, "endpoints": serializer_class(instance).data["endpoints"]}
    before = meshes_of(instance) if instance else set()
    serializer = serializer_class(instance, data=body, context={"tenant": tenant})
    try:
        serializer.is_valid(raise_exception=True)
    except serializers.ValidationError as exc:
        raise Conflict(
            f"{kind}/{name} cannot be restored as it was: {summary(flatten(exc.detail))}. "
            "Change what conflicts with it first.",
            code="rollback_conflict",
        ) from exc
    changes.saved(serializer.save(tenant=tenant), before, serializer)
