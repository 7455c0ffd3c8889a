"""Mesh revisions: what each one stores, and the manifests they add up to.

A manifest maps "kind/name" to the digest of every resource a mesh's proxies
depend on: the mesh itself, its routes (the bulk of a large mesh) and its
dependencies (its backend services, their health checks and endpoint groups,
and those groups' autoscaling policies). A revision stores the delta from the
revision before (`Revision.changes`); every CHECKPOINT_EVERY-th stores the
whole manifest too, so writing one costs O(change) and reading one costs a
checkpoint plus fewer than CHECKPOINT_EVERY deltas.
"""
from django.db.models import Max

from service.mesh.models import AutoscalingPolicy, BackendService, EndpointGroup, HealthCheck, Revision, Route

CHECKPOINT_EVERY = 100
DEPENDENCY_KINDS = frozenset((BackendService.kind, HealthCheck.kind, EndpointGroup.kind, AutoscalingPolicy.kind))


def resource_key(instance) -> str:
    return f"{instance.kind}/{instance.name}"


def is_checkpoint(number: int) -> bool:
    return (number - 1) % CHECKPOINT_EVERY == 0  # the first revision, then every CHECKPOINT_EVERY-th


def dependencies(mesh_id: int) -> dict[str, str]:
    """The part of the mesh's manifest that is not the mesh or its routes."""
    groups = EndpointGroup.objects.filter(backends__backend_service__mesh_id=mesh_id)
    parts = [
        (BackendService.kind, BackendService.objects.filter(mesh_id=mesh_id)),
        (HealthCheck.kind, HealthCheck.objects.filter(backend_services__mesh_id=mesh_id)),
        (EndpointGroup.kind, groups),
        (AutoscalingPolicy.kind, AutoscalingPolicy.objects.filter(target__in=groups)),
    ]
    return {f"{kind}/{name}": version for kind, queryset in parts for name, version in queryset.values_list("name", "version")}


def manifest(mesh) -> dict[str, str]:
    """The mesh's manifest now, read from the policy itself."""
    entries = {resource_key(mesh): mesh.version, **dependencies(mesh.pk)}
    routes = Route.objects.filter(meshes=mesh).values_list("type", "name", "version")
    entries.update((f"{route_type}-routes/{name}", version) for route_type, name, version in routes)
    return dict(sorted(entries.items()))


def apply(entries: dict[str, str], changes: dict[str, str]):
    for key, digest in changes.items():
        if digest:
            entries[key] = digest
        else:
            entries.pop(key, None)


def manifests(mesh_id: int, numbers) -> dict[int, dict[str, str]]:
    """The manifests of these revisions of a mesh (those that exist), rebuilt
    from the last checkpoint at or before the oldest of them."""
    wanted = set(numbers)
    history = Revision.objects.filter(mesh_id=mesh_id)
    start = history.filter(number__lte=min(wanted), checkpoint__isnull=False).aggregate(Max("number"))["number__max"]
    rows = history.filter(number__gte=start or 0, number__lte=max(wanted)).order_by("number")
    entries, found = {}, {}
    for number, changes, checkpoint in rows.values_list("number", "changes", "checkpoint"):
        if checkpoint is not None:
            entries = dict(checkpoint)
        else:
            apply(entries, changes)
        if number in wanted:
            found[number] = dict(sorted(entries.items()))
    return found


def dependency_changes(mesh_id: int, before: dict[str, str]) -> dict[str, str]:
    """How the dependency part of the manifest `before` differs from now."""
    old = {key: digest for key, digest in before.items() if key.split("/", 1)[0] in DEPENDENCY_KINDS}
    new = dependencies(mesh_id)
    changes = {key: digest for key, digest in new.items() if old.get(key) != digest}
    changes.update((key, "") for key in old.keys() - new.keys())
    return changes


def attach_manifests(revisions):
    """Set `manifest` on each revision, with one rebuild per mesh."""
    by_mesh = {}
    for revision in revisions:
        by_mesh.setdefault(revision.mesh_id, []).append(revision)
    for mesh_id, of_mesh in by_mesh.items():
        built = manifests(mesh_id, [revision.number for revision in of_mesh])
        for revision in of_mesh:
            revision.manifest = built[revision.number]
