"""Feeding the cache: stored policy -> Translation -> a snapshot per locality key.

The replica holds one Translation per (tenant, mesh) that has streams. A
change notice of such a mesh re-reads its policy and translates it again
(with the previous Translation, so unchanged resources are reused), then sets
the snapshot of every locality key in use; a key that gets its first watch is
filled from the held Translation or, for a new mesh, by a first translation.
On start and whenever the bus reconnects (notices may have been lost) every
held mesh is refreshed. If the database is away, the cache keeps the last
snapshots and the refresh is retried. If the bus is away at start, the
replica serves without it (every new watch is still filled from the
database) and subscribes in the background; once subscribed, it refreshes
every held mesh, as on a reconnect.

A notice can also be lost without a reconnect: a Redis that hangs for a few
seconds fails the publisher's PUBLISH, while the subscription's connection
survives. So every `catch_up_every` seconds (settings.XDS_CATCH_UP_SEC) the
replica reads the mark of each mesh it holds, in one query: its revision
(policy) and the sum of the change times of the verdicts of its services'
health checks (a verdict makes no revision). A mesh whose revision moved
since the previous look (or that it looks at for the first time) is
refreshed; one whose verdicts alone moved has only its verdicts read again
(one query) and applied to the held Translation, as a health notice is. A
lost notice costs at most that much delay. Every verdict change moves its
row's time forward, so it moves the sum whatever order the workers'
transactions commit in (a maximum would not move for a verdict stamped
before another and committed after it).

Endpoint health is not policy: a verdict change arrives as an
"endpoint-health" notice that carries the change itself, and a replica that
holds the mesh's Translation applies it to the held policy
(:meth:`MeshPolicy.with_endpoint_health`) and translates from the previous
Translation, so only the named services' ClusterLoadAssignments are rebuilt
and re-sent: nothing is read from the database. A replica that does not hold
the mesh ignores the notice (its next load reads the verdicts). The work of a
mesh is done one job at a time, so health and refreshes never interleave:
health that arrives while a refresh (or a re-read of the verdicts) runs is
applied after it (it may have read the verdicts before they changed);
health that arrived before a refresh starts is dropped, as the refresh reads
it or something newer from the database (a notice is published after its
verdict commits).

Endpoints given by host name are sent as the addresses the replica resolves
them to (``resolve.py``): a load resolves the mesh's names (from the
resolver's cache while fresh), and every `readdress_every` seconds
(settings.XDS_DNS_REFRESH_SEC) each held mesh's names are looked up again, a
mesh whose names now resolve differently being translated from its held
Translation (only the ClusterLoadAssignments concerned change), as a job of
its own in the same queue.

Policy loads, lookups and translations run in the ORM pool, off the event
loop; cache updates happen on the loop.
"""
from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import NamedTuple

from django.db.models import DecimalField, Func, OuterRef, Q, Subquery, Sum

from service.notices import NoticeBusError
from service.xds.cache import CacheKey, SnapshotCache
from service.xds.orm import OrmPool
from service.xds.snapshot import Snapshot

logger = logging.getLogger("service.xds")

MeshKey = tuple[str, str]

# Meshes whose marks one query of the catch-up reads.
MARKS_PER_QUERY = 500
# The kind of a notice that carries endpoint health verdicts (ChangeNotice.endpoints).
ENDPOINT_HEALTH = "endpoint-health"


def load_and_translate(tenant: str, mesh: str, previous):
    """ORM and CPU work of one refresh (in a pool thread): the new Translation, or None if the mesh is gone."""
    from service.xds.policy import load_policy
    from service.xds.translate import translate

    policy = load_policy(tenant, mesh)
    return None if policy is None else translate(with_resolved_hostnames(policy), previous)


def with_resolved_hostnames(policy):
    """The policy with its host-name endpoints' addresses (resolve.py)."""
    from service.xds.resolve import get_resolver

    names = policy.hostnames()
    return policy.with_addresses(get_resolver().resolve(names)) if names else policy


def with_stored_verdicts(translation):
    """ORM and CPU work of a catch-up that found a mesh's verdicts moved (in a
    pool thread): the held Translation with the stored verdicts, or None
    when it has them already."""
    from service.xds.policy import load_verdicts
    from service.xds.translate import translate

    policy = translation.policy
    updated = policy.with_endpoint_health(load_verdicts(policy.tenant, policy.mesh))
    return None if updated is policy else translate(updated, translation)


def readdress(translation):
    """DNS work of a periodic look (in a pool thread): the held Translation
    with its host names resolved again, or None when they resolve as before."""
    from service.xds.translate import translate

    policy = with_resolved_hostnames(translation.policy)
    return None if policy is translation.policy else translate(policy, translation)


def with_endpoint_health(translation, changes):
    """CPU work of a health notice (in a pool thread): the held Translation
    with the endpoints' new health, from the previous one."""
    from service.xds.translate import translate

    return translate(translation.policy.with_endpoint_health(changes), translation)


class Mark(NamedTuple):
    """What moves when a mesh's proxies need something new from the database."""

    revision: int
    # The sum of the change times (epoch seconds) of the verdicts of the
    # mesh's services' health checks, exact on Postgres; None when there is no verdict.
    verdicts: Decimal | None


class Epoch(Func):
    """A timestamp as seconds since the epoch (exact on Postgres: numeric;
    to the millisecond on SQLite, the development database)."""

    template = "EXTRACT(EPOCH FROM %(expressions)s)"
    output_field = DecimalField()

    def as_sqlite(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, template="(julianday(%(expressions)s) - 2440587.5) * 86400.0",
                              **extra_context)


def current_marks(mesh_keys: list[MeshKey]) -> dict[MeshKey, Mark]:
    """The mark of each of these meshes (in a pool thread), 500 meshes a query; a mesh gone is left out."""
    from service.health.models import Verdict
    from service.mesh.models import Mesh

    verdicts = (Verdict.objects.filter(health_check__backend_services__mesh=OuterRef("pk")).order_by()
                .values("health_check__backend_services__mesh").annotate(mark=Sum(Epoch("changed_at"))).values("mark"))
    found = {}
    for start in range(0, len(mesh_keys), MARKS_PER_QUERY):
        wanted = Q()
        for tenant, mesh in mesh_keys[start:start + MARKS_PER_QUERY]:
            wanted |= Q(tenant__name=tenant, name=mesh)
        rows = (Mesh.objects.filter(wanted).annotate(verdicts=Subquery(verdicts))
                .values_list("tenant__name", "name", "revision", "verdicts"))
        found.update(((tenant, mesh), Mark(revision, marked)) for tenant, mesh, revision, marked in rows)
    return found


def snapshot_for(translation, key: CacheKey) -> Snapshot:
    from service.xds.translate import ProxyLocality

    return translation.snapshot(ProxyLocality(key.cloud, key.region, ""))


class PolicySync:
    def __init__(self, cache: SnapshotCache, orm: OrmPool, *, retry_after: float = 5.0, catch_up_every: float = 30.0,
                 readdress_every: float = 30.0, refresh=load_and_translate, snapshot=snapshot_for,
                 marks=current_marks, health=with_endpoint_health, verdicts=with_stored_verdicts,
                 readdress=readdress):
        self.cache = cache
        self.orm = orm
        self.retry_after = retry_after
        self.catch_up_every = catch_up_every
        self._refresh_fn = refresh
        self._snapshot_fn = snapshot
        self._marks_fn = marks
        self._health_fn = health
        self._verdicts_fn = verdicts
        self._readdress_fn = readdress
        self.readdress_every = readdress_every
        self._readdressing: asyncio.Task | None = None
        self._marks_seen: dict[MeshKey, Mark | None] = {}
        self._catching_up: asyncio.Task | None = None
        self._translations: dict[MeshKey, object] = {}
        # One job per mesh at a time: a refresh wanted, or health to apply.
        self._running: dict[MeshKey, asyncio.Task] = {}
        self._stale: set[MeshKey] = set()
        self._health: dict[MeshKey, list[tuple]] = {}
        self._reread: set[MeshKey] = set()  # meshes whose stored verdicts moved
        self._resolve: set[MeshKey] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscription = None
        self._subscribing: asyncio.Task | None = None
        self._stopping = asyncio.Event()
        self.refreshes = 0  # completed refreshes, for tests and benchmarks
        self.health_updates = 0  # health notices applied without a refresh, likewise
        self.verdict_rereads = 0  # stored verdicts applied by the catch-up without a refresh, likewise

    async def start(self, bus) -> None:
        self._loop = asyncio.get_running_loop()
        self.cache.on_missing = self._on_missing
        try:
            await self._subscribe(bus)
        except NoticeBusError as error:
            logger.warning("notice bus unavailable (%s): serving without it, subscribing again every %gs",
                           error, self.retry_after)
            self._subscribing = self._loop.create_task(self._subscribe_when_back(bus))
        self._catching_up = self._loop.create_task(self._catch_up_periodically())
        self._readdressing = self._loop.create_task(self._readdress_periodically())
        self.resync()

    async def _subscribe(self, bus) -> None:
        self._subscription = await asyncio.to_thread(
            bus.subscribe, self._notice_from_any_thread, on_reconnect=self._reconnect_from_any_thread)

    async def _subscribe_when_back(self, bus) -> None:
        """Until subscribed (or stopped); then catch up on what was missed meanwhile."""
        while not await self._stopped_within(self.retry_after):
            try:
                await self._subscribe(bus)
            except NoticeBusError as error:
                logger.info("notice bus still unavailable: %s", error)
                continue
            logger.warning("notice bus subscribed: refreshing every mesh served")
            self.resync()
            return

    async def _stopped_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def _catch_up_periodically(self) -> None:
        while not await self._stopped_within(self.catch_up_every):
            await self.catch_up()

    async def catch_up(self) -> None:
        """Refresh each held mesh whose revision moved since the last look, or
        that is new to it; read the verdicts again of one whose verdicts alone moved."""
        held = sorted(self.cache.meshes() | set(self._translations))
        try:
            marks = await self.orm.run(self._marks_fn, held)
        except Exception:
            logger.warning("could not read the marks of the meshes served; looking again in %gs",
                           self.catch_up_every, exc_info=True)
            return
        seen, self._marks_seen = self._marks_seen, {key: marks.get(key) for key in held}
        for mesh_key in held:
            now = self._marks_seen[mesh_key]
            if mesh_key in seen and seen[mesh_key] == now:
                continue
            before = seen.get(mesh_key)
            if before is not None and now is not None and before.revision == now.revision:
                self._reread.add(mesh_key)  # only its verdicts moved
                self._start(mesh_key)
            else:
                self.refresh(mesh_key)  # new to the catch-up, gone or back, or its policy changed

    async def _readdress_periodically(self) -> None:
        """Host names are looked up again every readdress_every seconds (the
        resolver's cache keeps answers that long): a held mesh whose names now
        resolve differently re-sends the ClusterLoadAssignments concerned."""
        while not await self._stopped_within(self.readdress_every):
            for mesh_key in list(self._translations):
                self._resolve.add(mesh_key)
                self._start(mesh_key)

    async def stop(self) -> None:
        self._stopping.set()
        for task in (self._subscribing, self._catching_up, self._readdressing):
            if task is not None:
                await task  # ends within the bus's subscribe timeout, or the database's deadlines
        if self._subscription is not None:
            await asyncio.to_thread(self._subscription.close)
        self.cache.on_missing = None
        for task in list(self._running.values()):
            task.cancel()
        await asyncio.gather(*self._running.values(), return_exceptions=True)

    def resync(self) -> None:
        """Refresh every mesh this replica serves."""
        for mesh_key in self.cache.meshes() | set(self._translations):
            self.refresh(mesh_key)

    def _notice_from_any_thread(self, notice) -> None:
        self._loop.call_soon_threadsafe(self._on_change_notice, notice)

    def _reconnect_from_any_thread(self) -> None:
        logger.info("notice bus reconnected: refreshing every mesh served")
        self._loop.call_soon_threadsafe(self.resync)

    def _on_change_notice(self, notice) -> None:
        mesh_key = (notice.tenant, notice.mesh)
        if notice.kinds == (ENDPOINT_HEALTH,) and notice.endpoints:
            self._on_health(mesh_key, notice.endpoints)
        else:  # policy, or health without the change itself: read it
            self._on_notice(mesh_key)

    def _on_notice(self, mesh_key: MeshKey) -> None:
        if mesh_key in self._translations or mesh_key in self.cache.meshes():
            self.refresh(mesh_key)

    def _on_health(self, mesh_key: MeshKey, endpoints) -> None:
        """Apply the change to the held Translation, after the job in flight;
        a mesh neither held nor being loaded is not this replica's concern."""
        if mesh_key not in self._translations and mesh_key not in self._running:
            return
        self._health.setdefault(mesh_key, []).extend(endpoints)
        self._start(mesh_key)

    def _on_missing(self, key: CacheKey) -> None:
        translation = self._translations.get(key.mesh_key)
        if translation is not None:
            self.cache.set(key, self._snapshot_fn(translation, key))
        else:
            self.refresh(key.mesh_key)

    def refresh(self, mesh_key: MeshKey) -> None:
        """Refresh the mesh now, or once more after the job in flight."""
        self._stale.add(mesh_key)
        self._start(mesh_key)

    def _start(self, mesh_key: MeshKey) -> None:
        if mesh_key not in self._running:
            self._running[mesh_key] = asyncio.get_running_loop().create_task(self._work(mesh_key))

    async def _work(self, mesh_key: MeshKey) -> None:
        """The mesh's jobs, one at a time, until none is left: refreshes
        first, then the health that arrived during them, then the stored
        verdicts read again, then host names looked up again."""
        try:
            while True:
                if mesh_key in self._stale:
                    self._stale.discard(mesh_key)
                    # What arrived before this refresh reads the database, the refresh reads.
                    self._health.pop(mesh_key, None)
                    self._reread.discard(mesh_key)
                    if not await self._refresh_once(mesh_key):
                        self._stale.discard(mesh_key)  # retried in retry_after, not at once
                        self._retry_later(mesh_key)
                elif mesh_key in self._health:
                    await self._apply_health(mesh_key, self._health.pop(mesh_key))
                elif mesh_key in self._reread:
                    self._reread.discard(mesh_key)
                    await self._reread_verdicts(mesh_key)
                elif mesh_key in self._resolve:
                    self._resolve.discard(mesh_key)
                    await self._apply(mesh_key, self._readdress_fn, "resolve the host names of")
                else:
                    return
        finally:
            del self._running[mesh_key]

    async def _refresh_once(self, mesh_key: MeshKey) -> bool:
        tenant, mesh = mesh_key
        previous = self._translations.get(mesh_key)
        try:
            translation = await self.orm.run(self._refresh_fn, tenant, mesh, previous)
        except Exception:
            logger.warning("could not refresh mesh %s/%s; serving its last snapshots", tenant, mesh, exc_info=True)
            return False
        self.refreshes += 1
        self._install(mesh_key, translation)
        return True

    async def _apply_health(self, mesh_key: MeshKey, changes: list[tuple]) -> None:
        if await self._apply(mesh_key, self._health_fn, "apply endpoint health to", changes):
            self.health_updates += 1

    async def _reread_verdicts(self, mesh_key: MeshKey) -> None:
        previous = self._translations.get(mesh_key)
        if previous is None:
            return  # the mesh went, or its load failed: the next load reads the verdicts
        try:
            translation = await self.orm.run(self._verdicts_fn, previous)
        except Exception:
            logger.warning("could not read the verdicts of mesh %s/%s; refreshing it in %gs", *mesh_key,
                           self.retry_after, exc_info=True)
            self._retry_later(mesh_key)
            return
        self.verdict_rereads += 1
        if translation is not None:
            self._install(mesh_key, translation)

    async def _apply(self, mesh_key: MeshKey, change, what: str, *args) -> bool:
        """Install ``change(held translation, *args)`` (in the pool) unless it is
        None; False when there was nothing to change."""
        previous = self._translations.get(mesh_key)
        if previous is None:
            return False  # the mesh went, or its load failed: the next load reads what changed
        try:
            translation = await self.orm.run(change, previous, *args)
        except Exception:
            # A bug, not an outage (no database): refresh from the database instead.
            logger.exception("could not %s mesh %s/%s; refreshing it", what, *mesh_key)
            self.refresh(mesh_key)
            return False
        if translation is None:
            return False
        self._install(mesh_key, translation)
        return True

    def _install(self, mesh_key: MeshKey, translation) -> None:
        """Hold the mesh's new Translation and set the snapshot of each of its keys."""
        tenant, mesh = mesh_key
        if not self.cache.watched_keys(tenant, mesh):
            self._translations.pop(mesh_key, None)  # its proxies left meanwhile
            self.cache.forget(tenant, mesh)
            return
        if translation is None:
            self._translations.pop(mesh_key, None)
            for key in self.cache.keys(tenant, mesh):
                self.cache.set(key, Snapshot.of(()))  # the mesh is gone: nothing to serve
            return
        self._translations[mesh_key] = translation
        for key in self.cache.keys(tenant, mesh):
            self.cache.set(key, self._snapshot_fn(translation, key))

    def _retry_later(self, mesh_key: MeshKey) -> None:
        self._loop.call_later(self.retry_after, self._on_notice, mesh_key)
