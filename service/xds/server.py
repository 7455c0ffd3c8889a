"""The stream server: one grpc.aio server, one port, serving

* ADS, state of the world (StreamAggregatedResources) and incremental
  (DeltaAggregatedResources), from the snapshot cache only;
* CSDS (ClientStatusDiscoveryService), to a tenant's API key, about that
  tenant's proxies;
* LRS (LoadReportingService), whose reports go to the load store.

A stream authenticates on its first request (auth.py), watches the cache key
of its mesh and locality, and from then on answers requests and cache changes
with what protocol.py computes. Responses go on the wire as bytes the protocol
module serialized once per snapshot; only the nonce is per stream. Every ACK
and NACK lands in the stream's ProxyRecord, which the Recorder writes in
batches. :class:`Callbacks` is the one seam for metrics and logs.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

import grpc
from django.db import DatabaseError
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.load_stats.v3 import lrs_pb2
from envoy.service.status.v3 import csds_pb2
from google.protobuf import duration_pb2
from google.protobuf.message import DecodeError

from service.xds import csds
from service.xds.admission import ProxyQuotaExceeded, check_room, proxies_elsewhere
from service.xds.auth import CLOUD_FIELD, AuthError, Authenticator, NodeIdentity, node_field
from service.xds.cache import CacheKey, SnapshotCache
from service.xds.load import LoadStore, LoadStoreFull, samples_of
from service.xds.orm import OrmPool
from service.xds.protocol import (
    Ack, DeltaStream, InvalidRequest, LimitExceeded, Nack, Outgoing, RequestRefused, SelectionMemo, SotwStream,
)
from service.xds.records import ProxyRecord, Recorder
from service.xds.streams import HeldStream, OpenStreams
from service.xds.untrusted import LOG_EXCERPT, PROXY_LOG_INTERVAL, PROXY_LOG_LINES, LogBudget, logged

logger = logging.getLogger("service.xds")

ADS_SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"
CSDS_SERVICE = "envoy.service.status.v3.ClientStatusDiscoveryService"
LRS_SERVICE = "envoy.service.load_stats.v3.LoadReportingService"

# A stream proves who it is with its first request (it carries the node): one
# that sends none within this many seconds is ended (DEADLINE_EXCEEDED), so
# idle connections hold nothing.
FIRST_REQUEST_TIMEOUT = 10.0
# gRPC's default receive limit, stated: a larger request ends its stream with
# RESOURCE_EXHAUSTED before any of it is read.
MAX_REQUEST_BYTES = 4 << 20

# How a request the protocol refuses (protocol.py, the limits) ends its stream.
_REFUSAL_STATUS = {
    LimitExceeded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
}

SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
    ("grpc.max_concurrent_streams", 1 << 16),
    # Streams the application has not yet picked up: gRPC core starts refusing
    # new ones (CANCELLED) past 1000 and all past 3000, which a thousand
    # proxies reconnecting at once to a replica exceed.
    ("grpc.server.max_pending_requests", 1 << 15),
    ("grpc.server.max_pending_requests_hard_limit", 1 << 16),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    # gRPC listens with SO_REUSEPORT by default, so a second replica started on
    # a replica's port would start silently and take half its new connections.
    # Without it, the second one cannot take the port and says so.
    ("grpc.so_reuseport", 0),
]


class AddressUnavailable(Exception):
    """The server cannot listen on its address."""

    def __init__(self, address: str):
        self.address = address
        # gRPC tells no reason; these two are the ones an operator meets.
        super().__init__(f"Cannot listen on {address}: another process (another xDS replica?) holds that port, "
                         "or the host is not an address of this machine.")


class Callbacks:
    """Told of everything that happens on streams; the base logs and counts.
    Called on the event loop: keep it quick."""

    def __init__(self):
        self.counts: Counter[str] = Counter()
        # A proxy NACKs at will, so what NACKs log is bounded per replica.
        self._nack_log = LogBudget(PROXY_LOG_LINES, PROXY_LOG_INTERVAL)
        self._load_log = LogBudget(PROXY_LOG_LINES, PROXY_LOG_INTERVAL)

    def stream_opened(self, identity: NodeIdentity, protocol: str) -> None:
        self.counts[f"streams_opened:{protocol}"] += 1
        logger.info("%s stream opened by %s", protocol, identity.node_id)

    def stream_closed(self, identity: NodeIdentity, protocol: str) -> None:
        self.counts[f"streams_closed:{protocol}"] += 1
        logger.info("%s stream of %s closed", protocol, identity.node_id)

    def refused(self, service: str, error: AuthError) -> None:
        self.counts[f"refused:{error.code.name}"] += 1
        logger.info("%s stream refused (%s): %s", service, error.code.name, logged(error.message, 4 * LOG_EXCERPT))

    def revoked(self, held: HeldStream) -> None:
        self.counts["streams_revoked"] += 1
        logger.info("a stream of tenant %s ended: %s", held.credential.tenant, held.reason)

    def ended(self, service: str, node_id: str, code: grpc.StatusCode, message: str) -> None:
        """The server ended a stream: no first request in time, or a request past a limit."""
        self.counts[f"ended:{code.name}"] += 1
        logger.info("%s stream%s ended (%s): %s", service, f" of {node_id}" if node_id else "", code.name, message)

    def sent(self, identity: NodeIdentity, out: Outgoing) -> None:
        self.counts["responses"] += 1
        logger.debug("sent %s %s (nonce %s) to %s", logged(out.type_url), out.version, out.nonce, identity.node_id)

    def answered(self, identity: NodeIdentity, outcome: Ack | Nack) -> None:
        if isinstance(outcome, Nack):
            self.counts["nacks"] += 1
            left_out = self._nack_log.take()
            if left_out is not None:
                logger.warning("%s NACKed %s (nonce %s): %s%s", identity.node_id, logged(outcome.type_url),
                               logged(outcome.nonce), logged(outcome.message),
                               f" ({left_out} NACKs before this one not logged)" if left_out else "")
        else:
            self.counts["acks"] += 1

    def load_reported(self, identity: NodeIdentity, samples: int) -> None:
        self.counts["load_samples"] += samples

    def load_dropped(self, identity: NodeIdentity, reason: str) -> None:
        """A report the load store would not take (its mesh holds as many samples as it may)."""
        self.counts["load_reports_dropped"] += 1
        left_out = self._load_log.take()
        if left_out is not None:
            logger.warning("dropped a load report of %s: %s%s", identity.node_id, reason,
                           f" ({left_out} more dropped since the last such line)" if left_out else "")


def _parse(message_type, body: bytes):
    try:
        return message_type.FromString(body)
    except DecodeError as error:
        raise InvalidRequest(f"the request is not a valid {message_type.DESCRIPTOR.full_name}") from error


async def _parsed(message_type, requests):
    """A stream's requests, parsed: bytes that are no request raise InvalidRequest."""
    async for body in requests:
        yield _parse(message_type, body)


class XdsServer:
    def __init__(self, cache: SnapshotCache, *, orm: OrmPool, authenticator: Authenticator, recorder: Recorder,
                 loads: LoadStore, replica: str, callbacks: Callbacks | None = None,
                 load_report_interval: float = 10.0, first_request_timeout: float = FIRST_REQUEST_TIMEOUT):
        self.cache = cache
        self.orm = orm
        self.auth = authenticator
        self.recorder = recorder
        self.loads = loads
        self.replica = replica
        self.callbacks = callbacks or Callbacks()
        self.load_report_interval = load_report_interval
        self.first_request_timeout = first_request_timeout
        self.memo = SelectionMemo()
        self.open_streams = OpenStreams()
        self._server: grpc.aio.Server | None = None

    def listen(self, host: str = "127.0.0.1", port: int = 0, tls: tuple[bytes, bytes] | None = None) -> int:
        """Take host:port (0 picks one), with TLS if (cert chain, key) PEMs are given; the bound port.
        Streams are served from start() on. Raises AddressUnavailable."""
        self._server = grpc.aio.server(options=SERVER_OPTIONS)
        self._server.add_generic_rpc_handlers(self._handlers())
        address = f"{host}:{port}"
        try:
            if tls:
                return self._server.add_secure_port(address, grpc.ssl_server_credentials([(tls[1], tls[0])]))
            return self._server.add_insecure_port(address)
        except RuntimeError as error:  # grpc's "Failed to bind to address"
            raise AddressUnavailable(address) from error

    async def start(self) -> None:
        await self._server.start()

    async def stop(self, grace: float = 1.0) -> None:
        if self._server is not None:
            await self._server.stop(grace)

    def _handlers(self):
        # Requests arrive as bytes and are parsed by the handlers (_parse), so
        # bytes that are no request get INVALID_ARGUMENT, not gRPC's UNKNOWN.
        raw = lambda body: body  # noqa: E731  (responses are serialized already)
        return [
            grpc.method_handlers_generic_handler(ADS_SERVICE, {
                "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(
                    self._sotw, response_serializer=raw),
                "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(
                    self._delta, response_serializer=raw),
            }),
            grpc.method_handlers_generic_handler(CSDS_SERVICE, {
                "StreamClientStatus": grpc.stream_stream_rpc_method_handler(
                    self._csds_stream, response_serializer=csds_pb2.ClientStatusResponse.SerializeToString),
                "FetchClientStatus": grpc.unary_unary_rpc_method_handler(
                    self._csds_fetch, response_serializer=csds_pb2.ClientStatusResponse.SerializeToString),
            }),
            grpc.method_handlers_generic_handler(LRS_SERVICE, {
                "StreamLoadStats": grpc.stream_stream_rpc_method_handler(
                    self._lrs, response_serializer=lrs_pb2.LoadStatsResponse.SerializeToString),
            }),
        ]

    # ADS

    async def _sotw(self, requests, context):
        await self._ads(_parsed(discovery_pb2.DiscoveryRequest, requests), context, SotwStream, "sotw")

    async def _delta(self, requests, context):
        await self._ads(_parsed(discovery_pb2.DeltaDiscoveryRequest, requests), context, DeltaStream, "delta")

    async def _ads(self, requests, context, protocol, name: str) -> None:
        first = await self._first_request(requests, context, ADS_SERVICE)
        if first is None:
            return
        identity = await self._authenticate(context, first.node, ADS_SERVICE)
        elsewhere = await self._proxies_elsewhere(identity)
        node = (identity.credential.mesh_id, identity.name)
        if elsewhere is not None:
            await self._check_room(context, identity, node, elsewhere)
        # No await since the check: this replica's proxies are still those it counted.
        with self.open_streams.hold(identity.credential, node) as held:
            await self._until_ended(context, held, self._serve_ads(first, requests, context, identity, protocol, name))

    async def _serve_ads(self, first, requests, context, identity: NodeIdentity, protocol, name: str) -> None:
        key = CacheKey(identity.tenant, identity.mesh, node_field(first.node, CLOUD_FIELD), first.node.locality.region)
        record = ProxyRecord.of(identity, first.node, self.replica)
        stream = protocol(key, self.memo)
        wake = asyncio.Event()
        watch = self.cache.watch(key, wake.set)
        reader = asyncio.create_task(self._read(first, requests, stream, record, identity, wake))
        self.callbacks.stream_opened(identity, name)
        self.recorder.changed(record)
        try:
            while True:
                await wake.wait()
                wake.clear()
                if reader.done():
                    await self._end_if_refused(context, reader, identity)
                    return
                await self._send(context, stream.responses(self.cache.get(key)), record, identity)
        finally:
            watch.close()
            reader.cancel()
            record.closed()
            self.recorder.changed(record)
            self.callbacks.stream_closed(identity, name)

    async def _read(self, first, requests, stream, record: ProxyRecord, identity: NodeIdentity,
                    wake: asyncio.Event) -> None:
        try:
            self._take(first, stream, record, identity)
            wake.set()
            async for request in requests:
                self._take(request, stream, record, identity)
                wake.set()
        finally:
            wake.set()  # the stream is over: let the writer see it

    async def _end_if_refused(self, context, reader: asyncio.Task, identity: NodeIdentity) -> None:
        """End the stream with the status of a refused request; re-raise anything else that ended the reader."""
        try:
            reader.result()
        except RequestRefused as error:
            await self._refuse(context, ADS_SERVICE, identity.node_id, error)

    def _take(self, request, stream, record: ProxyRecord, identity: NodeIdentity) -> None:
        outcome = stream.on_request(request)
        if outcome is not None:
            record.answered(outcome)
            self.callbacks.answered(identity, outcome)
            self.recorder.changed(record)

    async def _send(self, context, responses: list[Outgoing], record: ProxyRecord, identity: NodeIdentity) -> None:
        for out in responses:
            await context.write(out.body)
            record.sent(out)
            self.callbacks.sent(identity, out)
        if responses:
            self.recorder.changed(record)

    async def _first_request(self, requests, context, service: str):
        """The stream's first request (None if the client closed first), within the deadline."""
        try:
            return await asyncio.wait_for(anext(requests, None), self.first_request_timeout)
        except TimeoutError:
            await self._abort(context, service, "", grpc.StatusCode.DEADLINE_EXCEEDED,
                              f"no request within {self.first_request_timeout:g} s of opening the stream; "
                              f"the first request must carry the node")
        except RequestRefused as error:
            await self._refuse(context, service, "", error)

    async def _refuse(self, context, service: str, node_id: str, error: RequestRefused) -> None:
        await self._abort(context, service, node_id, _REFUSAL_STATUS[type(error)], str(error))

    async def _abort(self, context, service: str, node_id: str, code: grpc.StatusCode, message: str) -> None:
        self.callbacks.ended(service, node_id, code, message)
        await context.abort(code, message)

    async def _authenticate(self, context, node, service: str) -> NodeIdentity:
        try:
            return await self.auth.node(context.invocation_metadata(), node)
        except AuthError as error:
            await self._deny(context, service, error)

    async def _deny(self, context, service: str, error: AuthError) -> None:
        self.callbacks.refused(service, error)
        await context.abort(error.code, error.message)

    async def _proxies_elsewhere(self, identity: NodeIdentity):
        """The database's count of the tenant's proxies on other replicas, or
        None while it is away: proxies are then admitted unchecked, since
        refusing them would strand them (the quota is checked again on their
        next connect)."""
        node = (identity.credential.mesh_id, identity.name)
        try:
            return await self.orm.run(proxies_elsewhere, identity.credential.tenant_id, node, self.replica)
        except DatabaseError:
            # Logged at INFO: in an outage every connect lands here (the credential re-check warns once).
            self.callbacks.counts["quota_unchecked"] += 1
            logger.info("cannot check the max_proxies quota of %s (database away): admitting %s",
                        identity.tenant, identity.node_id)
            return None

    async def _check_room(self, context, identity: NodeIdentity, node, elsewhere) -> None:
        try:
            check_room(node, elsewhere, self.open_streams.proxies(identity.credential.tenant_id))
        except ProxyQuotaExceeded as error:
            await self._deny(context, ADS_SERVICE, AuthError(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error)))

    async def _until_ended(self, context, held: HeldStream, work) -> None:
        """Run a stream's work until it ends, or until its credential is revoked:
        then stop the work and end the stream UNAUTHENTICATED."""
        work = asyncio.ensure_future(work)
        revoked = asyncio.ensure_future(held.ended.wait())
        try:
            await asyncio.wait((work, revoked), return_when=asyncio.FIRST_COMPLETED)
        finally:
            revoked.cancel()
            work.cancel()  # if the handler itself was cancelled, or the credential revoked
        if not held.ended.is_set():
            return work.result()
        await asyncio.wait((work,))  # let it close its records
        self.callbacks.revoked(held)
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, held.reason)

    # CSDS

    async def _csds_fetch(self, body, context):
        credential = await self._tenant(context)
        try:
            request = _parse(csds_pb2.ClientStatusRequest, body)
        except RequestRefused as error:
            await self._refuse(context, CSDS_SERVICE, "", error)
        return await self._client_status(credential.tenant_id, request, context)

    async def _csds_stream(self, requests, context):
        credential = await self._tenant(context)
        with self.open_streams.hold(credential) as held:
            await self._until_ended(context, held, self._answer_csds(credential, requests, context))

    async def _answer_csds(self, credential, requests, context) -> None:
        try:
            async for request in _parsed(csds_pb2.ClientStatusRequest, requests):
                await context.write(await self._client_status(credential.tenant_id, request, context))
        except RequestRefused as error:
            await self._refuse(context, CSDS_SERVICE, "", error)

    async def _tenant(self, context):
        try:
            return await self.auth.tenant(context.invocation_metadata())
        except AuthError as error:
            await self._deny(context, CSDS_SERVICE, error)

    async def _client_status(self, tenant_id: int, request, context):
        try:
            return await self.orm.run(csds.client_status, tenant_id, request)
        except csds.UnsupportedMatcher as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        except DatabaseError:
            # An API key verified before the outage gets this far.
            await context.abort(grpc.StatusCode.UNAVAILABLE, "proxy records cannot be read now; retry")

    # LRS

    async def _lrs(self, requests, context):
        requests = _parsed(lrs_pb2.LoadStatsRequest, requests)
        first = await self._first_request(requests, context, LRS_SERVICE)
        if first is None:
            return
        identity = await self._authenticate(context, first.node, LRS_SERVICE)
        with self.open_streams.hold(identity.credential) as held:
            await self._until_ended(context, held, self._serve_lrs(first, requests, context, identity))

    async def _serve_lrs(self, first, requests, context, identity: NodeIdentity) -> None:
        await context.write(lrs_pb2.LoadStatsResponse(
            send_all_clusters=True,
            load_reporting_interval=duration_pb2.Duration(
                seconds=int(self.load_report_interval),
                nanos=int(self.load_report_interval % 1 * 1e9)),
        ))
        await self._keep_load(identity, first)
        try:
            async for request in requests:
                await self._keep_load(identity, request)
        except RequestRefused as error:
            await self._refuse(context, LRS_SERVICE, identity.node_id, error)

    async def _keep_load(self, identity: NodeIdentity, request) -> None:
        samples = samples_of(request, identity.name, time.time())
        if samples:
            try:
                await asyncio.to_thread(self.loads.record, identity.tenant, identity.mesh, samples)
            except LoadStoreFull as error:
                self.callbacks.load_dropped(identity, str(error))
            except Exception:
                # A lost report only delays the autoscaler; the stream goes on.
                logger.warning("could not keep a load report of %s", identity.node_id, exc_info=True)
            self.callbacks.load_reported(identity, len(samples))
