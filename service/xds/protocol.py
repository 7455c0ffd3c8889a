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
on one snapshot share one body and only a nonce is appended per stream. The
memo keys a subscription by a digest of its names, never by the names
themselves, and it and the cache of serialized delta resources are bounded in
bytes (lru.py): what proxies ask for shapes them.

Limits: what one stream may subscribe to is bounded (the constants below,
listed in docs/xds-server.md, "Limits"). A request past a limit raises
:class:`LimitExceeded` or :class:`InvalidRequest` before it changes anything;
the server ends the stream with RESOURCE_EXHAUSTED or INVALID_ARGUMENT and the
error's message, which names the limit and its value.
"""
from __future__ import annotations

import functools
import hashlib
import itertools
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from envoy.service.discovery.v3 import discovery_pb2

from service.xds.lru import BoundedLru
from service.xds.snapshot import CLUSTER, ENDPOINT, LISTENER, PUSH_ORDER, Resource, Snapshot

# Envoy subscribes to these by wildcard; everything else only by name.
WILDCARD_TYPES = frozenset({LISTENER, CLUSTER})
WILDCARD = "*"

# Resource warming: Envoy keeps an updated EDS cluster warming (the old one
# serving) until it receives that cluster's ClusterLoadAssignment again, even
# an unchanged one; over delta it does not even ask. So a changed Cluster is
# followed by its endpoints: the EDS type again in state of the world
# (clusters come first in push order), the same-named resources in delta.

# What one stream may ask for. A sidecar of a mesh at the default resource
# quota (2,000) names at most a few thousand resources of a type; these leave
# room for several times that and bound a stream's names to about 10 MB at worst.
MAX_NAMES_PER_REQUEST = 10_000  # resource_names; or subscribe + unsubscribe + initial_resource_versions
MAX_NAMES_PER_TYPE = 10_000  # subscribed names of one type URL on one stream
MAX_NAMES_PER_STREAM = 20_000  # subscribed names of all types on one stream
MAX_NAME_LENGTH = 512  # characters of a resource name (ours are at most a hostname and a prefix)
MAX_VERSION_LENGTH = 256  # characters of a version a client presents (ours are 16)
# Delta responses of one type not yet ACKed or NACKed: past this the oldest
# nonce is forgotten (a late answer to it is then ignored, like any unknown nonce).
MAX_OUTSTANDING_NONCES = 100

# The resource types Envoy and gRPC may ask for over ADS. The four of
# PUSH_ORDER are served; the others Envoy asks for only when its configuration
# points it at ADS for them (ours never does), and they are answered as
# empty. Any other type URL ends the stream: state is kept per type, so the
# types a stream may name are this fixed set.
NOT_SERVED_TYPES = frozenset("type.googleapis.com/" + name for name in (
    "envoy.extensions.transport_sockets.tls.v3.Secret",  # SDS
    "envoy.service.runtime.v3.Runtime",  # RTDS
    "envoy.config.route.v3.ScopedRouteConfiguration",  # SRDS
    "envoy.config.route.v3.VirtualHost",  # VHDS
    "envoy.config.core.v3.TypedExtensionConfig",  # ECDS
    "envoy.config.endpoint.v3.LbEndpoint",  # LEDS
))
XDS_TYPES = frozenset(PUSH_ORDER) | NOT_SERVED_TYPES

# The memos every stream of a replica shares: entries and (estimated) bytes.
SELECTION_MEMO_ENTRIES = 4096
SELECTION_MEMO_BYTES = 64 << 20
DELTA_RESOURCE_CACHE_ENTRIES = 65536
DELTA_RESOURCE_CACHE_BYTES = 64 << 20
# What an entry costs beyond the bytes it holds (its key, the dict slots).
_ENTRY_OVERHEAD = 200


class RequestRefused(Exception):
    """A request the server will not take; the stream ends with its message."""


class LimitExceeded(RequestRefused):
    """Asks for more than a stream may have (RESOURCE_EXHAUSTED)."""


class InvalidRequest(RequestRefused):
    """Not a request this server can take (INVALID_ARGUMENT)."""


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


@dataclass(frozen=True)
class Subscription:
    """What a stream subscribes to of one type: a wildcard and/or names."""

    wildcard: bool = False
    names: frozenset[str] = frozenset()

    @functools.cached_property
    def digest(self) -> bytes:
        """Stands for the names in memo keys (computed once per subscription)."""
        return hashlib.blake2b(repr(sorted(self.names)).encode(), digest_size=16).digest()


class SelectionMemo:
    """A bounded LRU of selections; one per server, used from its event loop.
    An entry weighs twice its resources' bytes: it keeps them alive (maybe
    past their snapshot) and, once a SotW stream uses it, their response body."""

    def __init__(self, entries: int = SELECTION_MEMO_ENTRIES, max_bytes: int = SELECTION_MEMO_BYTES):
        self.entries = BoundedLru[Selection](entries, max_bytes)

    def select(self, scope: object, snapshot: Snapshot, type_url: str, subscription: Subscription) -> Selection:
        # The scope (the stream's cache key) is part of the key, so that equal
        # versions of two tenants can never share an entry.
        key = (scope, type_url, snapshot.version(type_url), subscription.wildcard, subscription.digest)
        selection = self.entries.get(key)
        if selection is None:
            selection = _select(snapshot, type_url, subscription)
            self.entries.put(key, selection, _ENTRY_OVERHEAD * (1 + len(selection.resources))
                             + 2 * sum(len(r.body) for r in selection.resources.values()))
        return selection


def _select(snapshot: Snapshot, type_url: str, subscription: Subscription) -> Selection:
    chosen = {r.name: r for r in snapshot.get(type_url, None)} if subscription.wildcard else {}
    chosen.update((r.name, r) for r in snapshot.get(type_url, sorted(subscription.names)))
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


# What a request may ask for.

def _check_request(type_url: str, names: Iterable[Collection[str]], versions: Collection[str]) -> None:
    """Refuse a request of an unknown type, with too many names, or too long a name or version."""
    if type_url not in XDS_TYPES:
        raise InvalidRequest(f"type URL {_excerpt(type_url)} is not an xDS resource type this server knows; "
                             f"it serves {', '.join(PUSH_ORDER)}")
    names = tuple(names)
    count = sum(map(len, names))
    if count > MAX_NAMES_PER_REQUEST:
        raise LimitExceeded(f"the request names {count} resources; at most {MAX_NAMES_PER_REQUEST} per request")
    _check_lengths(itertools.chain.from_iterable(names), MAX_NAME_LENGTH, "resource name")
    _check_lengths(versions, MAX_VERSION_LENGTH, "version")


def _check_lengths(values: Iterable[str], limit: int, what: str) -> None:
    longest = max(map(len, values), default=0)
    if longest > limit:
        raise InvalidRequest(f"a {what} of {longest} characters; at most {limit}")


def _excerpt(text: str, length: int = 100) -> str:
    return repr(text[:length]) + ("..." if len(text) > length else "")


class _Stream:
    """What both protocols keep per stream: its scope, the selection memo, a
    state per type URL and the nonces it has sent."""

    def __init__(self, scope: object, memo: SelectionMemo):
        self.scope = scope
        self.memo = memo
        self.types: dict = {}
        self._nonces = _Nonces()

    def _check_subscription(self, type_url: str, names: int) -> None:
        """Refuse a request after which ``names`` names of ``type_url`` would be too many."""
        if names > MAX_NAMES_PER_TYPE:
            raise LimitExceeded(f"{names} resource names of {type_url} on one stream; "
                                f"at most {MAX_NAMES_PER_TYPE} per type")
        total = names + sum(state.subscribed() for t, state in self.types.items() if t != type_url)
        if total > MAX_NAMES_PER_STREAM:
            raise LimitExceeded(f"{total} resource names on one stream; at most {MAX_NAMES_PER_STREAM} of all types")


# State of the world.

@dataclass
class _SotwType:
    subscription: Subscription = Subscription()
    nonce: str = ""
    sent_version: str | None = None
    client_version: str = ""  # what the client said it had when it (re)connected
    must_answer: bool = True
    sent: dict[str, Resource] = field(default_factory=dict)  # the resources of the last response

    def subscribed(self) -> int:
        return len(self.subscription.names)


class SotwStream(_Stream):
    types: dict[str, _SotwType]

    def on_request(self, request: discovery_pb2.DiscoveryRequest) -> Ack | Nack | None:
        type_url = request.type_url
        _check_request(type_url, (request.resource_names,), (request.version_info,))
        state = self.types.get(type_url)
        first = state is None
        if not first and request.response_nonce != state.nonce:
            return None  # stale: the client has not yet seen our latest response
        subscription = _sotw_subscription(request, type_url, first or state.subscription.wildcard)
        self._check_subscription(type_url, len(subscription.names))
        if first:
            state = self.types[type_url] = _SotwType(client_version=request.version_info)
        outcome = None if first else _ack_or_nack(type_url, request.version_info, request)
        if first or subscription != state.subscription:
            state.subscription, state.must_answer = subscription, True
        return outcome

    def responses(self, snapshot: Snapshot | None) -> list[Outgoing]:
        if snapshot is None:
            return []
        out = []
        for type_url in _in_push_order(self.types):
            state = self.types[type_url]
            selection = self.memo.select(self.scope, snapshot, type_url, state.subscription)
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
                endpoints.must_answer |= any(
                    name in state.sent and state.sent[name].version != r.version
                    for name, r in selection.resources.items() if name in endpoints.subscription.names)
            state.sent = selection.resources
        return out


def _sotw_subscription(request, type_url: str, may_be_wildcard: bool) -> Subscription:
    names = frozenset(request.resource_names)
    # An empty list is the legacy wildcard, for types that have one, as long as
    # the client has not named resources before.
    wildcard = WILDCARD in names or (not names and type_url in WILDCARD_TYPES and may_be_wildcard)
    return Subscription(wildcard, names - {WILDCARD})


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
    _subscription: Subscription | None = None  # of wildcard and names; made again after they change

    def subscribed(self) -> int:
        return len(self.names)

    def subscription(self) -> Subscription:
        if self._subscription is None:
            self._subscription = Subscription(self.wildcard, frozenset(self.names))
        return self._subscription

    def subscribe(self, subscribe: set[str], unsubscribe: set[str]) -> None:
        if WILDCARD in subscribe:
            self.wildcard = True
        if WILDCARD in unsubscribe:
            self.wildcard = False
        added = subscribe - self.names - {WILDCARD}
        self.names |= added
        self.unannounced |= added
        for name in unsubscribe - {WILDCARD}:
            self.names.discard(name)
            self.unannounced.discard(name)
            if not self.wildcard:
                self.known.pop(name, None)  # the client dropped it
        self._subscription = None


class DeltaStream(_Stream):
    types: dict[str, _DeltaType]

    def on_request(self, request: discovery_pb2.DeltaDiscoveryRequest) -> Ack | Nack | None:
        type_url = request.type_url
        initial = request.initial_resource_versions
        _check_request(type_url, (request.resource_names_subscribe, request.resource_names_unsubscribe, initial),
                       initial.values())
        subscribe = set(request.resource_names_subscribe)
        unsubscribe = set(request.resource_names_unsubscribe)
        state = self.types.get(type_url)
        first = state is None
        if first:
            # What a reconnecting client has counts as named until the first response tells it what is gone.
            self._check_subscription(type_url, len(initial) + len(subscribe - unsubscribe - {WILDCARD}))
            state = self.types[type_url] = _DeltaType(known=dict(initial))
            state.wildcard = not subscribe and type_url in WILDCARD_TYPES
        elif subscribe or unsubscribe:
            self._check_subscription(type_url, len((state.names | subscribe) - unsubscribe - {WILDCARD}))
        outcome = None
        if request.response_nonce in state.outstanding:
            outcome = _ack_or_nack(type_url, state.outstanding[request.response_nonce], request)
            _forget_up_to(state.outstanding, request.response_nonce)
        state.subscribe(subscribe, unsubscribe)
        return outcome

    def responses(self, snapshot: Snapshot | None) -> list[Outgoing]:
        if snapshot is None:
            return []
        out = []
        for type_url in _in_push_order(self.types):
            state = self.types[type_url]
            selection = self.memo.select(self.scope, snapshot, type_url, state.subscription())
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
            if len(state.outstanding) > MAX_OUTSTANDING_NONCES:
                del state.outstanding[next(iter(state.outstanding))]
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


_delta_resources = BoundedLru[bytes](DELTA_RESOURCE_CACHE_ENTRIES, DELTA_RESOURCE_CACHE_BYTES)


def delta_resource(resource: Resource) -> bytes:
    """A resource as a delta ``Resource`` message, serialized once per version
    (while it stays in the cache: the entry weighs its bytes and the resource's)."""
    body = _delta_resources.get(resource)
    if body is None:
        body = discovery_pb2.Resource(name=resource.name, version=resource.version,
                                      resource=resource.as_any()).SerializeToString()
        _delta_resources.put(resource, body, _ENTRY_OVERHEAD + len(body) + len(resource.body))
    return body


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
