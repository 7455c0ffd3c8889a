"""Who is on a stream: node tokens for proxies, API keys for CSDS.

A proxy presents a node token of its tenant and mesh, either as gRPC initial
metadata ``authorization: Bearer <token>`` (Envoy: ``initial_metadata`` of its
xDS cluster's gRPC service) or, for proxyless gRPC clients, whose xDS
bootstrap has no call credentials we can use, in its node metadata field
``interlock_token``. The token alone decides the tenant and mesh: a node id
that names another is refused, so no node id or resource name ever reaches
another tenant's snapshots.
"""
from __future__ import annotations

import hashlib
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc
from django.db import DatabaseError

from service.xds.orm import OrmPool
from service.xds.untrusted import NODE_NAME_LENGTH, has_control_characters, logged

if TYPE_CHECKING:
    from service.xds.credentials import VerifiedCredentials

NODE_ID = re.compile(r"^tenants/(?P<tenant>[^/]+)/meshes/(?P<mesh>[^/]+)/nodes/(?P<name>[^/]+)$")
NODE_TOKEN_FIELD = "interlock_token"
CLOUD_FIELD = "cloud"
# Unknown secrets remembered at once, before the expired ones are swept.
MAX_UNKNOWN_REMEMBERED = 10_000


class AuthError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Credential:
    """What a valid token or key stands for, and which row it is (``kind`` is
    the credential's kind, ``ilt`` for node tokens and ``ilk`` for API keys;
    ``id`` its row), so that its streams can be ended when that row is gone."""

    tenant: str
    tenant_id: int
    mesh: str = ""
    mesh_id: int = 0
    kind: str = ""
    id: int = 0


@dataclass(frozen=True)
class NodeIdentity:
    credential: Credential
    node_id: str
    name: str

    @property
    def tenant(self) -> str:
        return self.credential.tenant

    @property
    def mesh(self) -> str:
        return self.credential.mesh


def bearer(metadata) -> str | None:
    """The token of an ``authorization: Bearer <token>`` metadata entry."""
    for key, value in metadata or ():
        if key.lower() == "authorization":
            scheme, _, token = str(value).strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def node_field(node, name: str) -> str:
    value = node.metadata.fields.get(name)
    return value.string_value if value is not None else ""


def presented_node_token(metadata, node) -> str | None:
    return bearer(metadata) or node_field(node, NODE_TOKEN_FIELD) or None


def check_node_id(credential: Credential, node_id: str) -> NodeIdentity:
    """The node's identity, if its id lies inside the token's tenant and mesh."""
    match = NODE_ID.match(node_id)
    if match is None:
        raise AuthError(grpc.StatusCode.INVALID_ARGUMENT,
                        f"node id '{logged(node_id)}' is not of the form tenants/<tenant>/meshes/<mesh>/nodes/<name>")
    if (match["tenant"], match["mesh"]) != (credential.tenant, credential.mesh):
        raise AuthError(grpc.StatusCode.PERMISSION_DENIED,
                        f"node id '{logged(node_id)}' is outside the node token's mesh "
                        f"tenants/{credential.tenant}/meshes/{credential.mesh}")
    check_node_name(match["name"])
    return NodeIdentity(credential, node_id, match["name"])


def check_node_name(name: str) -> None:
    """A node name is the proxy's key in its mesh's records and on the proxies
    API, so it is refused rather than stored other than it was sent."""
    if len(name) > NODE_NAME_LENGTH:
        raise AuthError(grpc.StatusCode.INVALID_ARGUMENT,
                        f"the node name is {len(name)} characters long; at most {NODE_NAME_LENGTH} are allowed")
    if has_control_characters(name):
        raise AuthError(grpc.StatusCode.INVALID_ARGUMENT,
                        f"the node name '{logged(name)}' contains a control character (NUL, newline, ...); "
                        "use printable characters only")


def _lookup_node_token(token: str) -> Credential | None:
    from service.tenants.services import NODE_TOKEN_KIND, find_node_token

    record = find_node_token(token)
    if record is None:
        return None
    return Credential(record.tenant.name, record.tenant_id, record.mesh.name, record.mesh_id,
                      NODE_TOKEN_KIND, record.pk)


def _lookup_api_key(key: str) -> Credential | None:
    from service.tenants.auth import API_KEY_KIND, find_api_key

    record = find_api_key(key)
    return None if record is None else Credential(record.tenant.name, record.tenant_id, kind=API_KEY_KIND,
                                                  id=record.pk)


class Authenticator:
    """Checks credentials in the ORM pool. A valid one is kept in ``verified``
    (credentials.py), which the replica re-checks against the database every
    few seconds: for ``ttl`` seconds after its lookup it is not looked up again
    (a thousand proxies reconnecting at once cost one lookup per token), a
    revoked one is dropped at the next re-check, and while the database is away
    one confirmed within ``verified.max_age`` is honoured. An unknown secret is
    remembered as such for ``ttl`` seconds, so a storm of bad ones costs one
    lookup each per ``ttl``."""

    def __init__(self, orm: OrmPool, verified: VerifiedCredentials, ttl: float = 10.0):
        self._orm = orm
        self._ttl = ttl
        self.verified = verified
        self._unknown: OrderedDict[str, float] = OrderedDict()

    async def node(self, metadata, node) -> NodeIdentity:
        token = presented_node_token(metadata, node)
        if token is None:
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED,
                            f"no node token: send 'authorization: Bearer <token>' metadata "
                            f"or the node metadata field {NODE_TOKEN_FIELD!r}")
        credential = await self._look_up(_lookup_node_token, token)
        if credential is None:
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED, "the node token is unknown or has been revoked")
        return check_node_id(credential, node.id)

    async def tenant(self, metadata) -> Credential:
        key = bearer(metadata)
        credential = await self._look_up(_lookup_api_key, key) if key else None
        if credential is None:
            raise AuthError(grpc.StatusCode.UNAUTHENTICATED,
                            "send a valid API key of the tenant as 'authorization: Bearer <key>'")
        return credential

    async def _look_up(self, lookup, secret: str) -> Credential | None:
        digest = hashlib.sha256(f"{lookup.__name__}\0{secret}".encode()).hexdigest()
        known = self.verified.looked_up_within(digest, self._ttl)
        if known is not None:
            return known
        now = time.monotonic()
        if self._unknown.get(digest, 0.0) > now:
            return None
        try:
            answer = await self._orm.run(lookup, secret)
        except DatabaseError as error:
            kept = self.verified.confirmed_within(digest, self.verified.max_age)
            if kept is None:
                raise AuthError(grpc.StatusCode.UNAVAILABLE, "credentials cannot be checked now; retry") from error
            return kept
        if answer is None:
            self._remember_unknown(digest, now)
        else:
            self.verified.looked_up(digest, answer)
        return answer

    def unknown_remembered(self) -> int:
        """How many bad secrets are remembered now (for metrics and tests)."""
        return len(self._unknown)

    def _remember_unknown(self, digest: str, now: float) -> None:
        # Oldest first (every entry lives ``ttl``): expired entries leave from
        # the front, and past the bound the oldest go too, so a flood of
        # distinct bad secrets holds at most MAX_UNKNOWN_REMEMBERED entries.
        self._unknown[digest] = now + self._ttl
        self._unknown.move_to_end(digest)
        while self._unknown:
            oldest, until = next(iter(self._unknown.items()))
            if until > now and len(self._unknown) <= MAX_UNKNOWN_REMEMBERED:
                break
            self._unknown.popitem(last=False)
