"""The write path of the policy. Every committed change

- stamps each resource it wrote with the content hash of its representation
  (stored once as a ResourceVersion: the ETag, and what revisions refer to);
- records a Change (who, when, what) and gives every mesh whose proxies depend
  on what changed a new Revision: a manifest of its whole configuration;
- publishes a ChangeNotice per mesh once the transaction has committed.

Diff and rollback work on those manifests.
"""
import hashlib
import json
import logging

import jsonpatch
from django.db import transaction
from django.db.models import F

from service.mesh.models import (
    AutoscalingPolicy, BackendService, Change, EndpointGroup, HealthCheck, Mesh, ResourceVersion, Revision, Route,
)
from service.notices import ChangeNotice, NoticeBusError, get_bus

logger = logging.getLogger(__name__)


def resource_key(instance) -> str:
    return f"{instance.kind}/{instance.name}"


def content_digest(kind: str, body: dict) -> str:
    canonical = json.dumps([kind, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def meshes_of(instance) -> set[int]:
    """The meshes whose proxies' configuration includes this resource."""
    if isinstance(instance, Mesh):
        return {instance.pk}
    if isinstance(instance, BackendService):
        return {instance.mesh_id}
    if isinstance(instance, Route):
        return set(instance.meshes.values_list("pk", flat=True))
    if isinstance(instance, HealthCheck):
        return set(BackendService.objects.filter(health_checks=instance).values_list("mesh_id", flat=True))
    if isinstance(instance, EndpointGroup):
        return set(BackendService.objects.filter(backends__endpoint_group=instance).values_list("mesh_id", flat=True))
    if isinstance(instance, AutoscalingPolicy):
        return meshes_of(instance.target)
    raise TypeError(f"{type(instance).__name__} is not a policy resource")


def manifest(mesh: Mesh) -> dict[str, str]:
    """Every resource the mesh's proxies depend on, as "kind/name" -> digest."""
    groups = EndpointGroup.objects.filter(backends__backend_service__mesh=mesh)
    parts = [
        (BackendService.kind, BackendService.objects.filter(mesh=mesh)),
        (HealthCheck.kind, HealthCheck.objects.filter(backend_services__mesh=mesh)),
        (EndpointGroup.kind, groups),
        (AutoscalingPolicy.kind, AutoscalingPolicy.objects.filter(target__in=groups)),
    ]
    entries = {resource_key(mesh): mesh.version}
    for kind, queryset in parts:
        entries.update((f"{kind}/{name}", version) for name, version in queryset.values_list("name", "version"))
    routes = Route.objects.filter(meshes=mesh).values_list("type", "name", "version")
    entries.update((f"{route_type}-routes/{name}", version) for route_type, name, version in routes)
    return dict(sorted(entries.items()))


def serializer_for(kind: str):
    from service.mesh.api.serializers import BY_KIND  # the API's shapes are the policy's shapes

    return BY_KIND[kind]


def stamp(instance) -> str:
    """Hash the resource's representation, keep that version, and mark the row with it."""
    body = serializer_for(instance.kind)(context={"tenant": instance.tenant}).policy_body(instance)
    digest = content_digest(instance.kind, body)
    ResourceVersion.objects.bulk_create(
        [ResourceVersion(tenant=instance.tenant, digest=digest, kind=instance.kind, name=instance.name, body=body)],
        ignore_conflicts=True,
    )
    type(instance).objects.filter(pk=instance.pk).update(version=digest)
    instance.version = digest
    return digest


class ChangeSet:
    """One committed change, of one resource or (a rollback) of many. Call
    `saved`/`deleted` for each resource written, inside the transaction, with
    the meshes it belonged to before; then `commit`."""

    def __init__(self, tenant, actor: str, action: str, subject: str):
        self.tenant, self.actor, self.action, self.subject = tenant, actor, action, subject
        self.resources: dict[str, str] = {}
        self.kinds: set[str] = set()
        self.mesh_ids: set[int] = set()

    def saved(self, instance, meshes_before=frozenset()):
        self.resources[resource_key(instance)] = stamp(instance)
        self.kinds.add(instance.kind)
        self.mesh_ids |= set(meshes_before) | meshes_of(instance)

    def deleted(self, instance, meshes_before):
        self.resources[resource_key(instance)] = ""
        self.kinds.add(instance.kind)
        self.mesh_ids |= set(meshes_before)

    def commit(self) -> list[Revision]:
        kind, _, name = self.subject.partition("/")
        change = Change.objects.create(
            tenant=self.tenant, actor=self.actor, action=self.action, kind=kind, name=name, resources=self.resources
        )
        # Meshes in id order, so two changes spanning the same meshes cannot deadlock.
        return [revision for mesh_id in sorted(self.mesh_ids) if (revision := self.new_revision(mesh_id, change))]

    def new_revision(self, mesh_id: int, change: Change) -> Revision | None:
        if not Mesh.objects.filter(pk=mesh_id).update(revision=F("revision") + 1):
            return None  # the change deleted the mesh itself
        mesh = Mesh.objects.get(pk=mesh_id)
        revision = Revision.objects.create(mesh=mesh, number=mesh.revision, change=change, manifest=manifest(mesh))
        notice = ChangeNotice(
            tenant=self.tenant.name,
            mesh=mesh.name,
            revision=mesh.revision,
            kinds=tuple(sorted(self.kinds)),
            resources=tuple(tuple(key.split("/", 1)) for key in sorted(self.resources)),
        )
        transaction.on_commit(lambda: publish(notice))
        return revision


def publish(notice: ChangeNotice):
    """After commit the change stands whatever happens here; a replica that
    missed the notice catches up from the database when it reconnects."""
    try:
        get_bus().publish(notice)
    except NoticeBusError:
        logger.exception("could not publish %s; subscribers will catch up from the database", notice)


def bodies(tenant, digests) -> dict[str, dict]:
    rows = ResourceVersion.objects.filter(tenant=tenant, digest__in=set(digests)).values_list("digest", "body")
    return dict(rows)


def diff(old: Revision, new: Revision) -> dict:
    """What changed between two revisions of a mesh, resource by resource; a
    changed resource comes with an RFC 6902 JSON Patch from old to new."""
    before, after = old.manifest, new.manifest
    stored = bodies(old.mesh.tenant, [*before.values(), *after.values()])
    changed = [key for key in sorted(before.keys() & after.keys()) if before[key] != after[key]]
    return {
        "from": old.number,
        "to": new.number,
        "added": [{"resource": key, "body": stored.get(after[key])} for key in sorted(after.keys() - before.keys())],
        "removed": [{"resource": key, "body": stored.get(before[key])} for key in sorted(before.keys() - after.keys())],
        "changed": [
            {"resource": key, "patch": jsonpatch.make_patch(stored.get(before[key]), stored.get(after[key])).patch}
            for key in changed
        ],
    }
