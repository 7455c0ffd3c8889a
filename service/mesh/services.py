"""The write path of the policy. Every committed change

- stamps each resource it wrote with the content hash of its representation
  (stored once as a ResourceVersion: the ETag, and what revisions refer to);
- records a Change (who, when, what) and gives every mesh whose proxies depend
  on what changed a new Revision (service.mesh.revisions: the manifest delta);
- publishes a ChangeNotice per mesh once the transaction has committed.

What concurrent writes could both pass if checked apart (quotas, revision
numbers, route claims) is checked at the end of the transaction, under locks
taken in one order: the tenant's row (only when a quota is checked), then the
meshes' rows by id (the revision bump), then the route claims of those meshes.
A write therefore holds them only from there to commit, and two writes cannot
wait for each other in a cycle.
"""
import functools
import hashlib
import json
import logging
from collections import defaultdict

import jsonpatch
from django.db import connection, transaction
from rest_framework.exceptions import PermissionDenied

from service import sql
from service.mesh import claims, revisions
from service.mesh.models import (
    AutoscalingPolicy, BackendService, Change, EndpointGroup, HealthCheck, Mesh, ResourceVersion, Revision, Route,
)
from service.mesh.revisions import resource_key
from service.notices import ChangeNotice, NoticeBusError, get_bus
from service.tenants import quotas

logger = logging.getLogger(__name__)


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
        return {mesh.pk for mesh in instance.meshes.all()}  # prefetched by the API's querysets and serializers
    if isinstance(instance, HealthCheck):
        return set(BackendService.objects.filter(health_checks=instance).values_list("mesh_id", flat=True))
    if isinstance(instance, EndpointGroup):
        return set(BackendService.objects.filter(backends__endpoint_group=instance).values_list("mesh_id", flat=True))
    if isinstance(instance, AutoscalingPolicy):
        return meshes_of(instance.target)
    raise TypeError(f"{type(instance).__name__} is not a policy resource")


def serializer_for(kind: str):
    from service.mesh.api.serializers import BY_KIND  # the API's shapes are the policy's shapes

    return BY_KIND[kind]


def stamp(instance, tenant, serializer=None, whole_row=False) -> str:
    """Hash the resource's representation, keep that version, and mark the row
    with it (`marking`, run at once)."""
    digest, mark = marking(instance, tenant, serializer, whole_row)
    if not mark.run():
        raise outside_tenant()
    return digest


def marking(instance, tenant, serializer=None, whole_row=False) -> tuple[str, sql.InsertNewThenUpdate]:
    """The resource's version (the hash of its representation) and the write
    that keeps it and marks the row with it. `serializer`: one of the
    resource's kind to reuse (its field tree is built already), else a new
    one. `whole_row`: the row's other columns are written too, in the same
    statement (an update leaves them to this).

    The mark is also the NetBox re-check of a write: it matches the row only
    if the row is `tenant`'s, so a write that would land outside the tenant
    updates nothing, and is refused before it can commit. With the request's
    `serializer`, the representation hashed here is also the response."""
    serializer = serializer or serializer_for(instance.kind)(context={"tenant": instance.tenant})
    # First: stamping updated_at, which the representation shows.
    row, values = sql.assignments(instance, excluded=("version",)) if whole_row else ("", [])
    representation = serializer.to_representation(instance)
    body = serializer.policy_body(representation)
    digest = content_digest(instance.kind, body)
    version = ResourceVersion(tenant_id=instance.tenant_id, digest=digest, kind=instance.kind, name=instance.name,
                              body=body)
    instance.version = digest
    if serializer.instance is instance:
        serializer.answer_with({**representation, "etag": digest})
    assigning = f"{row}, version = %s" if row else "version = %s"
    return digest, sql.InsertNewThenUpdate([version], type(instance), assigning, "id = %s AND tenant_id = %s",
                                           [*values, digest, instance.pk, tenant.pk])


def outside_tenant() -> PermissionDenied:
    return PermissionDenied("The change would reach outside this tenant.")


def bump(mesh_id: int) -> Mesh | None:
    """The mesh with its next revision number, its row locked until commit;
    None if the change deleted the mesh."""
    return next(iter(sql.update(Mesh, "revision = revision + 1", "id = %s", [mesh_id], returning=True)), None)


@functools.cache
def bump_recording_sql(inserting_change: bool, riding: str) -> str:
    """bump() that also inserts the mesh's Revision (and, if asked, first
    its Change) in its WITH, after the `riding` clauses of another write
    (an InsertNewThenUpdate's, or none): Postgres runs them as one statement.
    Its row is the change's id, the revision's, the rows the riding write
    updated, and the bumped mesh (NULLs if deleted)."""
    mesh_columns, _ = sql.row_reader(Mesh)
    meshes, revisions_table = sql.quote(Mesh._meta.db_table), sql.quote(Revision._meta.db_table)
    change_id = "(SELECT id FROM changed)" if inserting_change else "%s"
    inserting = f"changed AS ({sql.insert_sql(Change, 1, False)[0]}), " if inserting_change else ""
    updated = "(SELECT count(*) FROM updated)" if riding else "NULL"
    riding = f"{riding}, " if riding else ""
    return (f"WITH {riding}{inserting}bumped AS (UPDATE {meshes} SET revision = revision + 1 WHERE id = %s "
            f"RETURNING {mesh_columns}), recorded AS (INSERT INTO {revisions_table} "
            "(mesh_id, number, change_id, changes, checkpoint, created_at) "
            f"SELECT id, revision, {change_id}, %s, NULL, %s FROM bumped RETURNING id) "
            f"SELECT {change_id}, (SELECT id FROM recorded), {updated}, {mesh_columns} "
            "FROM (SELECT 1) AS one LEFT JOIN bumped ON true")


def rides_in_bump(mark: sql.InsertNewThenUpdate) -> bool:
    """Whether `mark` may ride in bump_recording's statement: not a mesh's,
    whose row the bump updates (Postgres does not update a row twice in one
    statement)."""
    return mark.model is not Mesh


def bump_recording(mesh_id: int, change: Change, changes: dict[str, str],
                   riding: sql.InsertNewThenUpdate | None = None) -> tuple[Mesh | None, Revision | None, int | None]:
    """bump(mesh_id), writing the revision of `change` (and `change`, if it
    is not written yet, and the `riding` write, if any) in the same
    statement: the bumped mesh and its revision (Nones if the change deleted
    the mesh), and the rows `riding` updated. The revision has no
    checkpoint: the caller adds one where its number asks for it."""
    revision = Revision(mesh_id=mesh_id, number=0, change=change, changes=changes)
    tail = sql.column_values(revision, [Revision._meta.get_field(name) for name in ("changes", "created_at")],
                             adding=True)
    inserting_change = change.pk is None
    head = sql.insert_statement([change], False)[1] if inserting_change else []
    params = [*head, mesh_id, *tail] if inserting_change else [mesh_id, change.pk, *tail, change.pk]
    clauses, riding_params = riding.with_clauses() if riding else ("", [])
    with connection.cursor() as cursor:
        cursor.execute(bump_recording_sql(inserting_change, clauses), [*riding_params, *params])
        change_pk, revision_pk, updated, *mesh_row = cursor.fetchone()
    if riding:
        riding.done()
    if inserting_change:
        change.pk = change_pk
        sql.mark_saved([change])
    if revision_pk is None:
        return None, None, updated
    revision.mesh = sql.row_reader(Mesh)[1](mesh_row)
    revision.pk, revision.number = revision_pk, revision.mesh.revision
    sql.mark_saved([revision])
    return revision.mesh, revision, updated


class ChangeSet:
    """One committed change, of one resource or (a rollback) of many. Call
    `saved`/`deleted` for each resource written, inside the transaction, with
    the meshes it belonged to before, and `ensure_room` for each quota the
    change may exceed; then `commit`."""

    def __init__(self, tenant, actor: str, action: str, subject: str, lone: bool = False):
        self.tenant, self.actor, self.action, self.subject = tenant, actor, action, subject
        # Whether the change writes one resource: nothing reads its row again
        # before commit, so its row (an update's) and its version may wait
        # for commit and ride in the revision bump. A change of several
        # writes each row at once: the next resource is validated against it.
        self.lone = lone
        self.resources: dict[str, str] = {}
        self.kinds: set[str] = set()
        self.mesh_ids: set[int] = set()
        # Per mesh, the manifest entries the change sets ("" removes one): the
        # mesh itself and routes, whose place in a manifest is their own.
        self.entries: dict[int, dict[str, str]] = defaultdict(dict)
        # Meshes whose dependencies changed: their delta is computed at commit.
        self.dependents: set[int] = set()
        # Routes whose claims may have changed: (route, its meshes now, whether it existed).
        self.claiming: list[tuple[Route, set[int], bool]] = []
        self.room: dict[str, int] = {}
        # A lone change's mark (its row's version), left for commit.
        self.mark: sql.InsertNewThenUpdate | None = None

    def saved(self, instance, meshes_before=frozenset(), serializer=None):
        key = resource_key(instance)
        whole_row = getattr(serializer, "row_unwritten", False)
        if self.lone and self.mark is None:
            digest, self.mark = marking(instance, self.tenant, serializer, whole_row)
        else:
            digest = stamp(instance, self.tenant, serializer, whole_row)
        self.resources[key] = digest
        after = meshes_of(instance)
        self.place(instance, key, digest, set(meshes_before), after)
        claims_before = getattr(serializer, "claims_before", None)  # a route update's, read before it
        if isinstance(instance, Route) and claims.claimed(instance, after) != claims_before:
            self.claiming.append((instance, after, bool(meshes_before)))

    def deleted(self, instance, meshes_before):
        key = resource_key(instance)
        self.resources[key] = ""
        self.place(instance, key, "", set(meshes_before), set())

    def place(self, instance, key, digest, before: set[int], after: set[int]):
        self.kinds.add(instance.kind)
        self.mesh_ids |= before | after
        if isinstance(instance, (Mesh, Route)):
            for mesh_id in before | after:
                self.entries[mesh_id][key] = digest if mesh_id in after else ""
        else:
            self.dependents |= before | after

    def ensure_room(self, quota: str, adding: int):
        """Check at commit that the tenant's `quota` holds what the change
        made (`adding` of it, counted by then)."""
        self.room[quota] = adding

    def commit(self) -> list[Revision]:
        kind, _, name = self.subject.partition("/")
        change = Change(
            tenant=self.tenant, actor=self.actor, action=self.action, kind=kind, name=name, resources=self.resources
        )
        recording = {mesh_id for mesh_id in self.mesh_ids if self.recorded_with_bump(mesh_id)}
        riding = self.mark if self.mark and recording and rides_in_bump(self.mark) else None
        if self.mark and not riding and not self.mark.run():
            raise outside_tenant()
        for quota, adding in self.room.items():
            quotas.ensure_room(self.tenant, quota, adding)
        meshes, made, unrecorded = {}, [], []
        for mesh_id in sorted(self.mesh_ids):
            if mesh_id in recording:
                mesh, revision, updated = bump_recording(mesh_id, change, dict(self.entries.get(mesh_id, {})), riding)
                if riding and not updated:
                    raise outside_tenant()
                riding = None
                if mesh:
                    meshes[mesh_id] = mesh
                    made.append(revision)
            elif mesh := bump(mesh_id):
                meshes[mesh_id] = mesh
                unrecorded.append(mesh)
        if change.pk is None:  # no bump wrote it
            sql.insert([change])
        for route, after, existed in self.claiming:
            claims.sync(route, [meshes[mesh_id] for mesh_id in sorted(after)], existed)
        later = [self.revision(mesh, change) for mesh in unrecorded]
        sql.insert(later)
        for revision in made:
            self.add_checkpoint(revision)
        made += later
        for revision in made:
            self.announce(revision)
        return made

    def recorded_with_bump(self, mesh_id: int) -> bool:
        """Whether the mesh's revision can be written by its bump: its
        changes are known before (none of its dependencies changed), and the
        database runs an INSERT in an UPDATE's WITH."""
        return mesh_id not in self.dependents and sql.writes_in_with()

    @staticmethod
    def add_checkpoint(revision: Revision):
        if revisions.is_checkpoint(revision.number):
            revision.checkpoint = revisions.manifest(revision.mesh)
            (value,) = sql.column_values(revision, [Revision._meta.get_field("checkpoint")], adding=False)
            sql.update(Revision, "checkpoint = %s", "id = %s", [value, revision.pk])

    def revision(self, mesh: Mesh, change: Change) -> Revision:
        changes = dict(self.entries.get(mesh.pk, {}))
        if mesh.pk in self.dependents:
            previous = mesh.revision - 1
            before = revisions.manifests(mesh.pk, [previous])[previous] if previous else {}
            changes.update(revisions.dependency_changes(mesh.pk, before))
        checkpoint = revisions.manifest(mesh) if revisions.is_checkpoint(mesh.revision) else None
        return Revision(mesh=mesh, number=mesh.revision, change=change, changes=changes, checkpoint=checkpoint)

    def announce(self, revision: Revision):
        notice = ChangeNotice(
            tenant=self.tenant.name,
            mesh=revision.mesh.name,
            revision=revision.number,
            kinds=tuple(sorted(self.kinds)),
            resources=tuple(tuple(key.split("/", 1)) for key in sorted(self.resources)),
        )
        transaction.on_commit(lambda: publish(notice))


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
    built = revisions.manifests(new.mesh_id, [old.number, new.number])
    before, after = built[old.number], built[new.number]
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
