"""The xDS protocol of one stream, as pure state machines: requests in,
ACK/NACK outcomes and serialized responses out. No I/O, so every rule here is
tested without a server (tests/service/xds/test_protocol.py).

State of the world (:class:`SotwStream`): per type, the subscription (a
wildcard and/or names), the last nonce and version sent. A request whose
nonce is the last one sent is an ACK (or, with ``error_detail``, a NACK); a
request with an older nonce is stale and ignored, as the protocol says. A type
is sent again when the version of what it subscribes to changes, or when the
subscription does.

Incremental (:class:`DeltaStream`): per type, what the client has (name ->
version, seeded from ``initial_resource_versions``); a response carries the
resources whose version differs and names the ones gone in
``removed_resources``.

Serialize once: a type's selection (the resources a subscription gets from one
snapshot, their version and the SotW response body) is memoized per (cache
key, type, type version, subscription) in :class:`SelectionMemo`, so N streams
on one snapshot share one body and only a nonce is appended per stream.
"""
from __future__ import annotations

import functools
import itertools
from collections import OrderedDict
from dataclasses import dataclass, field

from envoy.service.discovery.v3 import discovery_pb2

from service.xds.snapshot import CLUSTER, ENDPOINT, LISTENER, PUSH_ORDER, Resource, Snapshot

# Envoy subscribes to these by wildcard; everything else only by name.
WILDCARD_TYPES = frozenset({LISTENER, CLUSTER})
WILDCARD = "*"

# Resource warming: Envoy keeps an updated EDS cluster warming (the old one
# serving) until it receives that cluster's ClusterLoadAssignment again, even
# an unchanged one; over delta it does not even ask. So a changed Cluster is
# followed by its endpoints: the EDS type again in state of the world
# (clusters come first in push order), the same-named resources in delta.

# Field numbers of DiscoveryResponse.nonce and DeltaDiscoveryResponse.resources.
_NONCE_FIELD = 5
_DELTA_RESOURCES_FIELD = 2


@dataclass(frozen=True)
class Ack:
    type_url: str
    version: str
    nonce: str


@dataclass(frozen=True)
class Nack:
    type_url: str
    version: str  # the version the client keeps using
    nonce: str
    message: str


@dataclass(frozen=True)
class Outgoing:
    """A response ready for the wire."""

    type_url: str
    version: str
    nonce: str
    body: bytes
    resources: int
    removed: int = 0


@dataclass(frozen=True)
class Selection:
    """What one subscription gets from one snapshot."""

    type_url: str
    version: str
    resources: dict[str, Resource]

    @functools.cached_property
    def sotw_body(self) -> bytes:
        """The SotW response without its nonce (appended per stream)."""
        return discovery_pb2.DiscoveryResponse(
            version_info=self.version,
            type_url=self.type_url,
            resources=[r.as_any() for r in self.resources.values()],
        ).SerializeToString()


class SelectionMemo:
    """A bounded LRU of selections; one per server, used from its event loop."""

    def __init__(self, size: int = 4096):
        self._size = size
        self._entries: OrderedDict[tuple, Selection] = OrderedDict()

    def select(self, scope: object, snapshot: Snapshot, type_url: str, wildcard: bool, names: frozenset[str]) -> Selection:
        # The scope (the stream's cache key) is part of the key, so that equal
        # versions of two tenants can never share an entry.
        key = (scope, type_url, snapshot.version(type_url), wildcard, names)
        selection = self._entries.get(key)
        if selection is not None:
            self._entries.move_to_end(key)
            return selection
        selection = _select(snapshot, type_url, wildcard, names)
        self._entries[key] = selection
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return selection


def _select(snapshot: Snapshot, type_url: str, wildcard: bool, names: frozenset[str]) -> Selection:
    chosen = {r.name: r for r in snapshot.get(type_url, None)} if wildcard else {}
    chosen.update((r.name, r) for r in snapshot.get(type_url, sorted(names)))
    resources = dict(sorted(chosen.items()))
    return Selection(type_url, Snapshot.of(resources.values()).version(type_url), resources)


def _in_push_order(type_urls) -> list[str]:
    rank = {t: i for i, t in enumerate(PUSH_ORDER)}
    return sorted(type_urls, key=lambda t: (rank.get(t, len(rank)), t))


class _Nonces:
    def __init__(self):
        self._counter = itertools.count(1)

    def next(self) -> str:
        return str(next(self._counter))


# State of the world.

@dataclass
class _SotwType:
    wildcard: bool = False
    names: frozenset[str] = frozenset()
    nonce: str = ""
    sent_version: str | None = None
    client_version: str = ""  # what the client said it had when it (re)connected
    must_answer: bool = True
    sent: dict[str, Resource] = field(default_factory=dict)  # the resources of the last response


class _Stream:
    """What both protocols keep per stream: its scope, the selection memo, a
    state per type URL and the nonces it has sent."""

    def __init__(self, scope: object, memo: SelectionMemo):
        self.scope = scope
        self.memo = memo
        self.types: dict = {}
        self._nonces = _Nonces()


class SotwStream(_Stream):
    types: dict[str, _SotwType]

    def on_request(self, request: discovery_pb2.DiscoveryRequest) -> Ack | Nack | None:
        type_url = request.type_url
        state = self.types.get(type_url)
        first = state is None
        if first:
            state = self.types[type_url] = _SotwType(client_version=request.version_info)
        elif request.response_nonce != state.nonce:
            return None  # stale: the client has not yet seen our latest response
        outcome = None if first else _ack_or_nack(type_url, request.version_info, request)
        wildcard, names = _sotw_subscription(request, type_url, first or state.wildcard)
        if first or (wildcard, names) != (state.wildcard, state.names):
            state.wildcard, state.names, state.must_answer = wildcard, names, True
        return outcome

    def responses(self, snapshot: Snapshot | None) -> list[Outgoing]:
        if snapshot is None:
            return []
        out = []
        for type_url in _in_push_order(self.types):
            state = self.types[type_url]
            selection = self.memo.select(self.scope, snapshot, type_url, state.wildcard, state.names)
            if selection.version == state.sent_version and not state.must_answer:
                continue
            if state.sent_version is None and selection.version == state.client_version:
                # A reconnecting client that has exactly this already.
                state.sent_version, state.must_answer = selection.version, False
                continue
            nonce = self._nonces.next()
            state.nonce, state.sent_version, state.must_answer = nonce, selection.version, False
            body = selection.sotw_body + _length_delimited(_NONCE_FIELD, nonce.encode())
            out.append(Outgoing(type_url, selection.version, nonce, body, len(selection.resources)))
            if type_url == CLUSTER and ENDPOINT in self.types:  # resource warming (see the top of this module)
                endpoints = self.types[ENDPOINT]
                endpoints.must_answer |= any(name in state.sent and state.sent[name].version != r.version
                                             for name, r in selection.resources.items() if name in endpoints.names)
            state.sent = selection.resources
        return out


def _sotw_subscription(request, type_url: str, may_be_wildcard: bool) -> tuple[bool, frozenset[str]]:
    names = frozenset(request.resource_names)
    # An empty list is the legacy wildcard, for types that have one, as long as
    # the client has not named resources before.
    wildcard = WILDCARD in names or (not names and type_url in WILDCARD_TYPES and may_be_wildcard)
    return wildcard, names - {WILDCARD}


def _ack_or_nack(type_url: str, version: str, request) -> Ack | Nack:
    if request.HasField("error_detail"):
        return Nack(type_url, version, request.response_nonce, request.error_detail.message)
    return Ack(type_url, version, request.response_nonce)


# Incremental (delta).

@dataclass
class _DeltaType:
    known: dict[str, str]
    wildcard: bool = False
    names: set[str] = field(default_factory=set)
    # Newly named resources the snapshot lacks: told once that they do not exist.
    unannounced: set[str] = field(default_factory=set)
    # Responses not yet ACKed or NACKed: nonce -> the version they carried.
    outstanding: dict[str, str] = field(default_factory=dict)
    must_answer: bool = True


class DeltaStream(_Stream):
    types: dict[str, _DeltaType]

    def on_request(self, request: discovery_pb2.DeltaDiscoveryRequest) -> Ack | Nack | None:
        type_url = request.type_url
        state = self.types.get(type_url)
        first = state is None
        if first:
            state = self.types[type_url] = _DeltaType(known=dict(request.initial_resource_versions))
        outcome = None
        if request.response_nonce in state.outstanding:
            outcome = _ack_or_nack(type_url, state.outstanding[request.response_nonce], request)
            _forget_up_to(state.outstanding, request.response_nonce)
        subscribe = set(request.resource_names_subscribe)
        unsubscribe = set(request.resource_names_unsubscribe)
        if first and not subscribe and type_url in WILDCARD_TYPES:
            state.wildcard = True
        if WILDCARD in subscribe:
            state.wildcard = True
        if WILDCARD in unsubscribe:
            state.wildcard = False
        added = subscribe - state.names - {WILDCARD}
        state.names |= added
        state.unannounced |= added
        for name in unsubscribe - {WILDCARD}:
            state.names.discard(name)
            state.unannounced.discard(name)
            if not state.wildcard:
                state.known.pop(name, None)  # the client dropped it
        return outcome

    def responses(self, snapshot: Snapshot | None) -> list[Outgoing]:
        if snapshot is None:
            return []
        out = []
        for type_url in _in_push_order(self.types):
            state = self.types[type_url]
            selection = self.memo.select(self.scope, snapshot, type_url, state.wildcard, frozenset(state.names))
            in_scope = selection.resources
            send = [r for name, r in in_scope.items() if state.known.get(name) != r.version]
            removed = sorted(n for n in state.known.keys() | state.unannounced if n not in in_scope)
            if not send and not removed and not state.must_answer:
                continue
            for resource in send:
                state.known[resource.name] = resource.version
            for name in removed:
                state.known.pop(name, None)
            state.unannounced.clear()
            state.must_answer = False
            if type_url == CLUSTER and ENDPOINT in self.types:
                for resource in send:  # resource warming (see the top of this module)
                    self.types[ENDPOINT].known.pop(resource.name, None)
            nonce = self._nonces.next()
            state.outstanding[nonce] = selection.version
            out.append(Outgoing(type_url, selection.version, nonce,
                                delta_body(type_url, selection.version, nonce, send, removed), len(send), len(removed)))
        return out


def _forget_up_to(outstanding: dict[str, str], nonce: str) -> None:
    """Drop the answered nonce and every older one (nonces are sent in order)."""
    for key in list(outstanding):
        del outstanding[key]
        if key == nonce:
            return


def delta_body(type_url: str, version: str, nonce: str, send: list[Resource], removed: list[str]) -> bytes:
    head = discovery_pb2.DeltaDiscoveryResponse(
        system_version_info=version, type_url=type_url, nonce=nonce, removed_resources=removed,
    ).SerializeToString()
    return head + b"".join(_length_delimited(_DELTA_RESOURCES_FIELD, delta_resource(r)) for r in send)


@functools.lru_cache(maxsize=65536)
def delta_resource(resource: Resource) -> bytes:
    """A resource as a delta ``Resource`` message, serialized once per version."""
    return discovery_pb2.Resource(name=resource.name, version=resource.version, resource=resource.as_any()).SerializeToString()


def _length_delimited(number: int, payload: bytes) -> bytes:
    # Protobuf messages concatenate: appending an encoded field to a serialized
    # message is the same as setting it.
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        bits, value = value & 0x7F, value >> 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)
