"""Immutable, consistent sets of xDS resources, each serialized once.

A :class:`Resource` holds the serialized bytes of one Envoy message and a
version that is a hash of those bytes, so two translations that produce the
same configuration produce the same version and nothing is pushed. A
:class:`Snapshot` is what one group of proxies (one mesh, seen from one
locality) should have; the stream server sends from it and never builds a
message itself, which is what lets one change be serialized once however many
proxies receive it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Iterable, Mapping

from google.protobuf import any_pb2
from google.protobuf.message import Message

_PREFIX = "type.googleapis.com/"
CLUSTER = _PREFIX + "envoy.config.cluster.v3.Cluster"
ENDPOINT = _PREFIX + "envoy.config.endpoint.v3.ClusterLoadAssignment"
LISTENER = _PREFIX + "envoy.config.listener.v3.Listener"
ROUTE = _PREFIX + "envoy.config.route.v3.RouteConfiguration"
# Make before break: a cluster exists before a route points at it.
PUSH_ORDER = (CLUSTER, ENDPOINT, LISTENER, ROUTE)


def content_version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def resource_name(message: Message) -> str:
    # ClusterLoadAssignment is the one xDS resource named by another field.
    return message.cluster_name if message.DESCRIPTOR.name == "ClusterLoadAssignment" else message.name


@dataclass(frozen=True, slots=True)
class Resource:
    type_url: str
    name: str
    body: bytes
    version: str
    # False for resources a proxy gets only by asking for them by name (a
    # proxyless gRPC client's API listener): a wildcard subscriber, an Envoy
    # sidecar, must not receive them.
    wildcard: bool = True

    @classmethod
    def of(cls, message: Message, *, wildcard: bool = True) -> Resource:
        body = message.SerializeToString(deterministic=True)
        return cls(_PREFIX + message.DESCRIPTOR.full_name, resource_name(message), body, content_version(body), wildcard)

    def as_any(self) -> any_pb2.Any:
        return any_pb2.Any(type_url=self.type_url, value=self.body)


@dataclass(frozen=True)
class Snapshot:
    """Resources by type URL and name; ``version(type_url)`` hashes a type's set."""

    resources: Mapping[str, Mapping[str, Resource]]
    _versions: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        frozen = MappingProxyType({t: MappingProxyType(dict(by_name)) for t, by_name in self.resources.items()})
        object.__setattr__(self, "resources", frozen)
        object.__setattr__(self, "_versions", MappingProxyType({t: _set_version(r.values()) for t, r in frozen.items()}))

    @classmethod
    def of(cls, resources: Iterable[Resource]) -> Snapshot:
        grouped: dict[str, dict[str, Resource]] = {t: {} for t in PUSH_ORDER}
        for resource in resources:
            grouped.setdefault(resource.type_url, {})[resource.name] = resource
        return cls(grouped)

    def version(self, type_url: str) -> str:
        return self._versions.get(type_url, _set_version(()))

    def get(self, type_url: str, names: Iterable[str] | None = None) -> list[Resource]:
        """The resources a subscription receives; ``names=None`` is a wildcard."""
        by_name = self.resources.get(type_url, {})
        if names is None:
            return [r for r in by_name.values() if r.wildcard]
        return [by_name[n] for n in names if n in by_name]


def _set_version(resources: Iterable[Resource]) -> str:
    digest = hashlib.sha256()
    for resource in sorted(resources, key=lambda r: r.name):
        digest.update(f"{resource.name}\0{resource.version}\0".encode())
    return digest.hexdigest()[:16]
