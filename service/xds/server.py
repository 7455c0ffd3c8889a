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
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.load_stats.v3 import lrs_pb2
from envoy.service.status.v3 import csds_pb2
from google.protobuf import duration_pb2

from service.xds import csds
from service.xds.auth import CLOUD_FIELD, AuthError, Authenticator, NodeIdentity, node_field
from service.xds.cache import CacheKey, SnapshotCache
from service.xds.load import LoadStore, samples_of
from service.xds.orm import OrmPool
from service.xds.protocol import Ack, DeltaStream, Nack, Outgoing, SelectionMemo, SotwStream
from service.xds.records import ProxyRecord, Recorder
from service.xds.untrusted import LOG_EXCERPT, PROXY_LOG_INTERVAL, PROXY_LOG_LINES, LogBudget, logged

logger = logging.getLogger("service.xds")

ADS_SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"
CSDS_SERVICE = "envoy.service.status.v3.ClientStatusDiscoveryService"
LRS_SERVICE = "envoy.service.load_stats.v3.LoadReportingService"


SERVER_OPTIONS = [
    ("grpc.max_concurrent_streams", 1 << 16),
    # Streams the application has not yet picked up: gRPC core starts refusing
    # new ones (CANCELLED) past 1000 and all past 3000, which a thousand
    # proxies reconnecting at once to a replica exceed.
    ("grpc.server.max_pending_requests", 1 << 15),
    ("grpc.server.max_pending_requests_hard_limit", 1 << 16),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
]


class Callbacks:
    """Told of everything that happens on streams; the base logs and counts.
    Called on the event loop: keep it quick."""

    def __init__(self):
        self.counts: Counter[str] = Counter()
        # A proxy NACKs at will, so what NACKs log is bounded per replica.
        self._nack_log = LogBudget(PROXY_LOG_LINES, PROXY_LOG_INTERVAL)

    def stream_opened(self, identity: NodeIdentity, protocol: str) -> None:
        self.counts[f"streams_opened:{protocol}"] += 1
        logger.info("%s stream opened by %s", protocol, identity.node_id)

    def stream_closed(self, identity: NodeIdentity, protocol: str) -> None:
        self.counts[f"streams_closed:{protocol}"] += 1
        logger.info("%s stream of %s closed", protocol, identity.node_id)

    def refused(self, service: str, error: AuthError) -> None:
        self.counts[f"refused:{error.code.name}"] += 1
        logger.info("%s stream refused (%s): %s", service, error.code.name, logged(error.message, 4 * LOG_EXCERPT))

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


class XdsServer:
    def __init__(self, cache: SnapshotCache, *, orm: OrmPool, authenticator: Authenticator, recorder: Recorder,
                 loads: LoadStore, replica: str, callbacks: Callbacks | None = None,
                 load_report_interval: float = 10.0):
        self.cache = cache
        self.orm = orm
        self.auth = authenticator
        self.recorder = recorder
        self.loads = loads
        self.replica = replica
        self.callbacks = callbacks or Callbacks()
        self.load_report_interval = load_report_interval
        self.memo = SelectionMemo()
        self._server: grpc.aio.Server | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0, tls: tuple[bytes, bytes] | None = None) -> int:
        """Listen on host:port (0 picks one), with TLS if (cert chain, key) PEMs are given; the bound port."""
        self._server = grpc.aio.server(options=SERVER_OPTIONS)
        self._server.add_generic_rpc_handlers(self._handlers())
        address = f"{host}:{port}"
        if tls:
            bound = self._server.add_secure_port(address, grpc.ssl_server_credentials([(tls[1], tls[0])]))
        else:
            bound = self._server.add_insecure_port(address)
        await self._server.start()
        return bound

    async def stop(self, grace: float = 1.0) -> None:
        if self._server is not None:
            await self._server.stop(grace)

    def _handlers(self):
        raw = lambda body: body  # noqa: E731  (responses are serialized already)
        return [
            grpc.method_handlers_generic_handler(ADS_SERVICE, {
                "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(
                    self._sotw, request_deserializer=discovery_pb2.DiscoveryRequest.FromString,
                    response_serializer=raw),
                "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(
                    self._delta, request_deserializer=discovery_pb2.DeltaDiscoveryRequest.FromString,
                    response_serializer=raw),
            }),
            grpc.method_handlers_generic_handler(CSDS_SERVICE, {
                "StreamClientStatus": grpc.stream_stream_rpc_method_handler(
                    self._csds_stream, request_deserializer=csds_pb2.ClientStatusRequest.FromString,
                    response_serializer=csds_pb2.ClientStatusResponse.SerializeToString),
                "FetchClientStatus": grpc.unary_unary_rpc_method_handler(
                    self._csds_fetch, request_deserializer=csds_pb2.ClientStatusRequest.FromString,
                    response_serializer=csds_pb2.ClientStatusResponse.SerializeToString),
            }),
            grpc.method_handlers_generic_handler(LRS_SERVICE, {
                "StreamLoadStats": grpc.stream_stream_rpc_method_handler(
                    self._lrs, request_deserializer=lrs_pb2.LoadStatsRequest.FromString,
                    response_serializer=lrs_pb2.LoadStatsResponse.SerializeToString),
            }),
        ]

    # ADS

    async def _sotw(self, requests, context):
        await self._ads(requests, context, SotwStream, "sotw")

    async def _delta(self, requests, context):
        await self._ads(requests, context, DeltaStream, "delta")

    async def _ads(self, requests, context, protocol, name: str) -> None:
        requests = aiter(requests)
        first = await anext(requests, None)
        if first is None:
            return
        identity = await self._authenticate(context, first.node, ADS_SERVICE)
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
                    reader.result()  # re-raise what ended it, if anything did
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

    async def _authenticate(self, context, node, service: str) -> NodeIdentity:
        try:
            return await self.auth.node(context.invocation_metadata(), node)
        except AuthError as error:
            self.callbacks.refused(service, error)
            await context.abort(error.code, error.message)

    # CSDS

    async def _csds_fetch(self, request, context):
        credential = await self._tenant(context)
        return await self._client_status(credential.tenant_id, request, context)

    async def _csds_stream(self, requests, context):
        credential = await self._tenant(context)
        async for request in requests:
            yield await self._client_status(credential.tenant_id, request, context)

    async def _tenant(self, context):
        try:
            return await self.auth.tenant(context.invocation_metadata())
        except AuthError as error:
            self.callbacks.refused(CSDS_SERVICE, error)
            await context.abort(error.code, error.message)

    async def _client_status(self, tenant_id: int, request, context):
        try:
            return await self.orm.run(csds.client_status, tenant_id, request)
        except csds.UnsupportedMatcher as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))

    # LRS

    async def _lrs(self, requests, context):
        requests = aiter(requests)
        first = await anext(requests, None)
        if first is None:
            return
        identity = await self._authenticate(context, first.node, LRS_SERVICE)
        await context.write(lrs_pb2.LoadStatsResponse(
            send_all_clusters=True,
            load_reporting_interval=duration_pb2.Duration(
                seconds=int(self.load_report_interval),
                nanos=int(self.load_report_interval % 1 * 1e9)),
        ))
        await self._keep_load(identity, first)
        async for request in requests:
            await self._keep_load(identity, request)

    async def _keep_load(self, identity: NodeIdentity, request) -> None:
        samples = samples_of(request, identity.name, time.time())
        if samples:
            try:
                await asyncio.to_thread(self.loads.record, identity.tenant, identity.mesh, samples)
            except Exception:
                # A lost report only delays the autoscaler; the stream goes on.
                logger.warning("could not keep a load report of %s", identity.node_id, exc_info=True)
            self.callbacks.load_reported(identity, len(samples))
