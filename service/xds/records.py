"""Proxy records: what each stream sent, and what its proxy ACKed or NACKed,
mirrored into the database off the event loop.

A stream keeps its :class:`ProxyRecord` in memory and tells the
:class:`Recorder` it changed; the recorder writes every changed record in one
transaction a moment later (``delay``), so a thousand ACKs arriving together
are one batch of upserts, not a thousand round trips. Streams never wait.

What a proxy sends is cleaned and cut to its column before it reaches a record
(untrusted.py). Should the database still refuse a batch, the batch is split
until the record it refuses is found; that record is dropped (counted, logged,
and no longer recorded until its proxy reconnects) and the others are written.
Only transient errors (the database away) keep a batch for a retry.

Rows outlive the streams they describe: a replica refreshes ``last_seen_at``
of its connected proxies every ``heartbeat``, and every replica now and then
sweeps the table (bounded batches, conditional statements, so any number may
at once): a row not seen for ``stale_after`` is of a replica that died, and is
marked disconnected as of when it was last seen; a row disconnected longer
than ``settings.PROXY_RETENTION`` is forgotten.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django.db.models import F
from django.utils import timezone

from service.xds import untrusted
from service.xds.auth import CLOUD_FIELD, NodeIdentity, node_field
from service.xds.orm import OrmPool
from service.xds.protocol import Ack, Nack, Outgoing
from service.xds.untrusted import LogBudget, logged, stored

logger = logging.getLogger("service.xds")

# The database is away: the batch is kept and written when it returns.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)
# Rows a sweep changes or deletes per statement, and statements per sweep.
SWEEP_BATCH = 1000
SWEEP_BATCHES = 10
# Streams a heartbeat refreshes per statement (well below any driver's limit on parameters).
TOUCH_BATCH = 1000


@dataclass
class TypeRecord:
    version_sent: str = ""
    nonce_sent: str = ""
    sent_at: datetime | None = None
    version_acked: str = ""
    acked_at: datetime | None = None
    error_message: str = ""
    error_nonce: str = ""
    error_at: datetime | None = None


@dataclass
class ProxyRecord:
    """The live state of one stream's proxy (mutated on the event loop only).

    It remembers what changed since it was last written: the proxy row only on
    connect and disconnect, otherwise just the types whose status moved, so an
    ACK costs the write of one status row.
    """

    identity: NodeIdentity
    replica: str
    kind: str
    user_agent: str
    cloud: str
    region: str
    zone: str
    stream: str = field(default_factory=lambda: uuid.uuid4().hex)
    connected_at: datetime = field(default_factory=timezone.now)
    disconnected_at: datetime | None = None
    types: dict[str, TypeRecord] = field(default_factory=dict)
    pk: int | None = None  # of its row, once written
    row_dirty: bool = True
    dirty_types: set[str] = field(default_factory=set)
    dropped: bool = False  # the database refused it: no longer recorded

    @classmethod
    def of(cls, identity: NodeIdentity, node, replica: str) -> ProxyRecord:
        agent = node.user_agent_name
        return cls(
            identity=identity,
            replica=replica,
            kind="envoy" if agent.lower() == "envoy" else "grpc",
            user_agent=stored(f"{agent} {node.user_agent_version}".strip(), untrusted.USER_AGENT_LENGTH),
            cloud=stored(node_field(node, CLOUD_FIELD), untrusted.CLOUD_LENGTH),
            region=stored(node.locality.region, untrusted.LOCALITY_LENGTH),
            zone=stored(node.locality.zone, untrusted.LOCALITY_LENGTH),
        )

    def sent(self, out: Outgoing) -> None:
        record = self._type(out.type_url)  # the proxy's; the version and nonce are ours
        record.version_sent, record.nonce_sent, record.sent_at = out.version, out.nonce, timezone.now()

    def answered(self, outcome: Ack | Nack) -> None:
        # All of it as the proxy sent it (in SotW, an ACK's version is the proxy's to say).
        record = self._type(outcome.type_url)
        if isinstance(outcome, Nack):
            record.error_message = stored(outcome.message, untrusted.NACK_MESSAGE_LENGTH, multiline=True)
            record.error_nonce, record.error_at = _nonce(outcome.nonce), timezone.now()
        else:
            record.version_acked, record.acked_at = _version(outcome.version), timezone.now()
            record.error_message, record.error_nonce, record.error_at = "", "", None

    def closed(self) -> None:
        self.disconnected_at = timezone.now()
        self.row_dirty = True

    def _type(self, type_url: str) -> TypeRecord:
        # Cut before it is a key: two long type URLs alike up to the cut are one row.
        type_url = stored(type_url, untrusted.TYPE_URL_LENGTH)
        self.dirty_types.add(type_url)
        return self.types.setdefault(type_url, TypeRecord())

    def take_changes(self) -> Pending:
        """What to write now (a copy, for the writer thread); the record is clean after."""
        row = self.row_dirty or self.pk is None
        pending = Pending(self.identity, self.stream, self.pk, self.disconnected_at,
                          self._row_fields() if row else None,
                          {t: dict(vars(self.types[t])) for t in self.dirty_types})
        self.row_dirty, self.dirty_types = False, set()
        return pending

    def mark_unwritten(self) -> None:
        self.row_dirty, self.dirty_types = True, set(self.types)

    def _row_fields(self) -> dict:
        credential = self.identity.credential
        return dict(tenant_id=credential.tenant_id, mesh_id=credential.mesh_id, name=self.identity.name,
                    node_id=self.identity.node_id, kind=self.kind, user_agent=self.user_agent, cloud=self.cloud,
                    region=self.region, zone=self.zone, replica=self.replica, stream=self.stream,
                    connected_at=self.connected_at, last_seen_at=self.disconnected_at or timezone.now(),
                    disconnected_at=self.disconnected_at)


def _version(version: str) -> str:
    return stored(version, untrusted.VERSION_LENGTH)


def _nonce(nonce: str) -> str:
    return stored(nonce, untrusted.NONCE_LENGTH)


@dataclass(frozen=True)
class Pending:
    identity: NodeIdentity
    stream: str
    pk: int | None
    disconnected_at: datetime | None
    row: dict | None  # the proxy row's fields, if it must be written
    types: dict[str, dict]  # the status fields of the types that changed


class Recorder:
    def __init__(self, orm: OrmPool, replica: str, *, delay: float = 0.05, heartbeat: float = 30.0,
                 sweep_every: float = 60.0, stale_after: float | None = None, retention: float | None = None):
        self._orm = orm
        self.replica = replica
        self._delay = delay
        self._heartbeat = heartbeat
        self._sweep_every = sweep_every
        # A few missed heartbeats, so that a slow one never makes a live proxy look gone.
        self._stale_after = timedelta(seconds=stale_after if stale_after is not None else 3 * heartbeat)
        self._retention = timedelta(seconds=retention if retention is not None else settings.PROXY_RETENTION)
        self._dirty: dict[str, ProxyRecord] = {}
        self._live: dict[str, ProxyRecord] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        # One writer at a time, so that a heartbeat cannot revive a row whose close was written before it.
        self._writing = asyncio.Lock()
        self._drop_log = LogBudget(untrusted.PROXY_LOG_LINES, untrusted.PROXY_LOG_INTERVAL)
        self._tasks: list[asyncio.Task] = []
        self.batches = 0  # transactions written, for metrics and tests
        self.dropped = 0  # records the database refused

    def changed(self, record: ProxyRecord) -> None:
        if record.dropped:
            return
        self._dirty[record.stream] = record
        if record.disconnected_at is None:
            self._live[record.stream] = record
        else:
            self._live.pop(record.stream, None)
        self._idle.clear()
        self._wake.set()

    async def start(self) -> None:
        self._idle.clear()  # until the previous run's streams are ended
        self._tasks = [asyncio.create_task(self._write_loop(timezone.now())),
                       asyncio.create_task(self._heartbeat_loop()),
                       asyncio.create_task(self._sweep_loop())]

    async def stop(self, timeout: float = 10.0) -> None:
        """Write what can be written within ``timeout``, then stop."""
        await self.flush(timeout)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait until every change made so far is written (or the timeout passes)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            logger.warning("%d proxy records not written within %.1fs (database away?)", len(self._dirty), timeout)

    async def _write_loop(self, started_at: datetime) -> None:
        await self._end_previous_run(started_at)
        backoff = self._delay
        while True:
            if not self._dirty:
                self._idle.set()
                await self._wake.wait()
            await asyncio.sleep(backoff)
            self._wake.clear()
            async with self._writing:
                batch, self._dirty = self._dirty, {}
                try:
                    await self._write(sorted(batch.values(), key=lambda record: record.connected_at))
                    backoff = self._delay
                except TRANSIENT_ERRORS:
                    logger.warning("could not write %d proxy records; retrying", len(batch), exc_info=True)
                    self._keep_for_retry(batch)
                    backoff = min(max(backoff * 2, 0.5), 10.0)

    async def _end_previous_run(self, started_at: datetime) -> None:
        """Streams a previous run of this replica id held ended when it
        stopped (an id given with --replica recurs; a default one does not)."""
        backoff = self._delay
        while True:
            try:
                async with self._writing:
                    await self._orm.run(mark_replica_disconnected, self.replica, started_at)
                return
            except TRANSIENT_ERRORS:
                logger.warning("could not end the streams of this replica's previous run; retrying", exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(max(backoff * 2, 0.5), 10.0)
            except DatabaseError:  # never to stop the writer: the sweep ends those streams in time anyway
                logger.warning("could not end the streams of this replica's previous run", exc_info=True)
                return

    async def _write(self, batch: list[ProxyRecord]) -> None:
        """Write the batch's changes in one transaction; if the database refuses
        it, write each half apart, down to the record it refuses, which is
        dropped. A transient error is raised: nothing of the batch is lost, as
        the rows written already are written again."""
        if not batch:
            return
        try:
            pks = await self._orm.run(write, [record.take_changes() for record in batch])
        except TRANSIENT_ERRORS:
            raise
        except Exception as error:  # whatever a record makes the database refuse, it must not hold back the others
            if len(batch) == 1:
                self._drop(batch[0], error)
                return
            for record in batch:
                record.mark_unwritten()
            middle = len(batch) // 2
            await self._write(batch[:middle])
            await self._write(batch[middle:])
            return
        for record in batch:
            record.pk = pks.get(record.stream, record.pk)
        self.batches += 1

    def _keep_for_retry(self, batch: dict[str, ProxyRecord]) -> None:
        kept = {stream: record for stream, record in batch.items() if not record.dropped}
        for record in kept.values():
            record.mark_unwritten()
        self._dirty = {**kept, **self._dirty}
        self._wake.set()

    def _drop(self, record: ProxyRecord, error: Exception) -> None:
        record.dropped = True
        self._live.pop(record.stream, None)
        self.dropped += 1
        left_out = self._drop_log.take()
        if left_out is not None:
            logger.warning("dropped the record of proxy %s (stream %s), which the database refused: %s; "
                           "it is recorded again when it reconnects%s", record.identity.node_id, record.stream,
                           logged(str(error)), f" ({left_out} more dropped, not logged)" if left_out else "")

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            async with self._writing:
                streams = list(self._live)
                try:
                    await self._orm.run(touch_streams, streams, timezone.now())
                except DatabaseError:
                    logger.warning("could not mark %d proxies as seen", len(streams), exc_info=True)

    async def _sweep_loop(self) -> None:
        while True:
            try:
                now = timezone.now()
                await self._orm.run(mark_stale_disconnected, now - self._stale_after)
                await self._orm.run(forget_disconnected, now - self._retention)
            except DatabaseError:
                logger.warning("could not sweep the proxy records; trying again in %.0fs", self._sweep_every,
                               exc_info=True)
            await asyncio.sleep(self._sweep_every)


def mark_replica_disconnected(replica: str, started_at: datetime) -> None:
    from service.xds.models import Proxy

    Proxy.objects.filter(replica=replica, disconnected_at__isnull=True,
                         connected_at__lt=started_at).update(disconnected_at=started_at)


def touch_streams(streams: list[str], now: datetime) -> None:
    """These streams are live: their rows are seen now, and connected even if a
    sweep took them for a dead replica's while this one could not reach the database."""
    from service.xds.models import Proxy

    for start in range(0, len(streams), TOUCH_BATCH):
        Proxy.objects.filter(stream__in=streams[start:start + TOUCH_BATCH]).update(last_seen_at=now,
                                                                                   disconnected_at=None)


def mark_stale_disconnected(seen_before: datetime) -> int:
    """Connected rows last seen before ``seen_before``: their replica stopped
    refreshing them (it died), so they are disconnected as of when last seen.
    How many were marked (at most SWEEP_BATCHES * SWEEP_BATCH: the next sweep goes on)."""
    from service.xds.models import Proxy

    stale = Proxy.objects.filter(disconnected_at__isnull=True, last_seen_at__lt=seen_before)
    marked = 0
    for _ in range(SWEEP_BATCHES):
        ids = list(stale.values_list("pk", flat=True)[:SWEEP_BATCH])
        # Conditional: a row refreshed since it was read is left alone.
        marked += stale.filter(pk__in=ids).update(disconnected_at=F("last_seen_at"))
        if len(ids) < SWEEP_BATCH:
            break
    return marked


def forget_disconnected(disconnected_before: datetime) -> int:
    """Delete rows (and their statuses) disconnected before ``disconnected_before``;
    how many (at most SWEEP_BATCHES * SWEEP_BATCH: the next sweep goes on)."""
    from service.xds.models import Proxy

    forgotten = 0
    for _ in range(SWEEP_BATCHES):
        with transaction.atomic():
            # Locked, so that a proxy reconnecting meanwhile waits and then makes its row anew;
            # skipping locked rows, so that replicas sweeping at once share the work.
            ids = list(Proxy.objects.select_for_update(skip_locked=True)
                       .filter(disconnected_at__lt=disconnected_before).values_list("pk", flat=True)[:SWEEP_BATCH])
            if ids:
                Proxy.objects.filter(pk__in=ids).delete()
        forgotten += len(ids)
        if len(ids) < SWEEP_BATCH:
            break
    return forgotten


def connected_proxies(tenant_id: int) -> int:
    """ORM: how many proxies of the tenant are connected now (to any replica)."""
    from service.xds.models import Proxy

    return Proxy.objects.filter(tenant_id=tenant_id, disconnected_at__isnull=True).count()


PROXY_FIELDS = ["node_id", "kind", "user_agent", "cloud", "region", "zone", "replica", "stream",
                "connected_at", "last_seen_at", "disconnected_at", "updated_at"]
TYPE_FIELDS = ["version_sent", "nonce_sent", "sent_at", "version_acked", "acked_at",
               "error_message", "error_nonce", "error_at"]


@transaction.atomic
def write(pending: list[Pending]) -> dict[str, int]:
    """Write a batch: upsert the rows of connected streams, mark closed ones
    disconnected only if the row still describes them (the proxy may have
    reconnected), then upsert the changed statuses. The row ids, by stream."""
    pks = _write_connected([p for p in pending if p.row is not None and p.disconnected_at is None])
    pks.update(_write_closed([p for p in pending if p.row is not None and p.disconnected_at is not None]))
    _write_types(pending, pks)
    return pks


def _write_connected(pending: list[Pending]) -> dict[str, int]:
    from service.xds.models import Proxy

    newest: dict[tuple, Pending] = {}  # one node may have reconnected within the batch
    for item in sorted(pending, key=lambda p: p.row["connected_at"]):
        newest[(item.row["tenant_id"], item.row["mesh_id"], item.row["name"])] = item
    rows = [Proxy(**item.row) for item in newest.values()]
    if rows:
        Proxy.objects.bulk_create(rows, update_conflicts=True, unique_fields=["tenant", "mesh", "name"],
                                  update_fields=PROXY_FIELDS)
    return {item.stream: row.pk for item, row in zip(newest.values(), rows)}


def _write_closed(pending: list[Pending]) -> dict[str, int]:
    from service.xds.models import Proxy

    pks = {}
    for item in pending:
        row = Proxy.objects.filter(tenant_id=item.row["tenant_id"], mesh_id=item.row["mesh_id"],
                                   name=item.row["name"]).first()
        if row is None:
            row = Proxy.objects.create(**item.row)
        elif row.stream != item.stream:
            continue
        else:
            Proxy.objects.filter(pk=row.pk).update(disconnected_at=item.disconnected_at,
                                                   last_seen_at=item.disconnected_at)
        pks[item.stream] = row.pk
    return pks


def _write_types(pending: list[Pending], pks: dict[str, int]) -> None:
    from service.xds.models import ProxyTypeStatus

    rows = []
    for item in pending:
        proxy_id = pks.get(item.stream, item.pk if item.row is None else None)
        if proxy_id is None:
            continue  # a closed stream whose node has reconnected since: its row is the new stream's
        rows += [ProxyTypeStatus(proxy_id=proxy_id, type_url=t, **fields) for t, fields in item.types.items()]
    if rows:
        ProxyTypeStatus.objects.bulk_create(rows, update_conflicts=True, unique_fields=["proxy", "type_url"],
                                            update_fields=TYPE_FIELDS)
