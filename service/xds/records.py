"""Proxy records: what each stream sent, and what its proxy ACKed or NACKed,
mirrored into the database off the event loop.

A stream keeps its :class:`ProxyRecord` in memory and tells the
:class:`Recorder` it changed; the recorder writes every changed record in one
transaction a moment later (``delay``), so a thousand ACKs arriving together
are one batch of upserts, not a thousand round trips. If the database is away,
the batch stays dirty and is written when it returns; streams never wait.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from django.db import DatabaseError, transaction
from django.utils import timezone

from service.xds.auth import CLOUD_FIELD, NodeIdentity, node_field
from service.xds.orm import OrmPool
from service.xds.protocol import Ack, Nack, Outgoing

logger = logging.getLogger("service.xds")


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

    @classmethod
    def of(cls, identity: NodeIdentity, node, replica: str) -> ProxyRecord:
        agent = node.user_agent_name
        return cls(
            identity=identity,
            replica=replica,
            kind="envoy" if agent.lower() == "envoy" else "grpc",
            user_agent=f"{agent} {node.user_agent_version}".strip(),
            cloud=node_field(node, CLOUD_FIELD),
            region=node.locality.region,
            zone=node.locality.zone,
        )

    def sent(self, out: Outgoing) -> None:
        record = self._type(out.type_url)
        record.version_sent, record.nonce_sent, record.sent_at = out.version, out.nonce, timezone.now()

    def answered(self, outcome: Ack | Nack) -> None:
        record = self._type(outcome.type_url)
        if isinstance(outcome, Nack):
            record.error_message, record.error_nonce, record.error_at = outcome.message, outcome.nonce, timezone.now()
        else:
            record.version_acked, record.acked_at = outcome.version, timezone.now()
            record.error_message, record.error_nonce, record.error_at = "", "", None

    def closed(self) -> None:
        self.disconnected_at = timezone.now()
        self.row_dirty = True

    def _type(self, type_url: str) -> TypeRecord:
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


@dataclass(frozen=True)
class Pending:
    identity: NodeIdentity
    stream: str
    pk: int | None
    disconnected_at: datetime | None
    row: dict | None  # the proxy row's fields, if it must be written
    types: dict[str, dict]  # the status fields of the types that changed


class Recorder:
    def __init__(self, orm: OrmPool, replica: str, *, delay: float = 0.05, heartbeat: float = 30.0):
        self._orm = orm
        self.replica = replica
        self._delay = delay
        self._heartbeat = heartbeat
        self._dirty: dict[str, ProxyRecord] = {}
        self._live: dict[str, ProxyRecord] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task] = []
        self.batches = 0  # transactions written, for metrics and tests

    def changed(self, record: ProxyRecord) -> None:
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
                       asyncio.create_task(self._heartbeat_loop())]

    async def stop(self) -> None:
        await self.flush()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait until every change made so far is written (or the timeout passes)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            logger.warning("proxy records not written within %.1fs (database away?)", timeout)

    async def _write_loop(self, started_at: datetime) -> None:
        backoff = self._delay
        ended_previous_run = False
        while True:
            if ended_previous_run:
                await self._wake.wait()
            await asyncio.sleep(backoff)
            self._wake.clear()
            batch, self._dirty = self._dirty, {}
            try:
                if not ended_previous_run:
                    # Streams a previous run of this replica held ended when it stopped.
                    await self._orm.run(mark_replica_disconnected, self.replica, started_at)
                    ended_previous_run = True
                if batch:
                    pks = await self._orm.run(write, [r.take_changes() for r in batch.values()])
                    for record in batch.values():
                        record.pk = pks.get(record.stream, record.pk)
                    self.batches += 1
                backoff = self._delay
            except DatabaseError:
                logger.warning("could not write %d proxy records; retrying", len(batch), exc_info=True)
                for record in batch.values():
                    record.mark_unwritten()
                self._dirty = {**batch, **self._dirty}
                self._wake.set()
                backoff = min(max(backoff * 2, 0.5), 10.0)
            if not self._dirty:
                self._idle.set()

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat)
            streams = list(self._live)
            try:
                await self._orm.run(touch_streams, streams, timezone.now())
            except DatabaseError:
                logger.warning("could not mark %d proxies as seen", len(streams), exc_info=True)


def mark_replica_disconnected(replica: str, started_at: datetime) -> None:
    from service.xds.models import Proxy

    Proxy.objects.filter(replica=replica, disconnected_at__isnull=True,
                         connected_at__lt=started_at).update(disconnected_at=started_at)


def touch_streams(streams: list[str], now: datetime) -> None:
    from service.xds.models import Proxy

    if streams:
        Proxy.objects.filter(stream__in=streams, disconnected_at__isnull=True).update(last_seen_at=now)


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
