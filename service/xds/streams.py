"""The streams a replica holds, by credential and by proxy: what a revocation
must end, and what counts against a tenant's max_proxies here.

No gRPC and no ORM: the server registers a stream once its credential is
checked (and, for ADS, its proxy admitted), and waits on ``HeldStream.ended``
beside the stream's own work; the credential re-check (credentials.py) ends
those whose credential is gone. Used on the event loop only.
"""
from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field

from service.xds.auth import Credential

REVOKED = {
    "ilt": "the node token has been revoked",
    "ilk": "the API key has been revoked",
}

Node = tuple[int, str]  # (mesh id, node name): one proxy of a tenant


@dataclass(eq=False)
class HeldStream:
    credential: Credential
    node: Node | None  # the proxy of an ADS stream
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str = ""

    def end(self, reason: str) -> None:
        self.reason = reason
        self.ended.set()


class OpenStreams:
    def __init__(self):
        self._held: set[HeldStream] = set()
        self._nodes: dict[int, Counter[Node]] = {}  # by tenant id: the ADS streams of each proxy

    @contextmanager
    def hold(self, credential: Credential, node: Node | None = None):
        held = HeldStream(credential, node)
        self._held.add(held)
        if node is not None:
            self._nodes.setdefault(credential.tenant_id, Counter())[node] += 1
        try:
            yield held
        finally:
            self._held.discard(held)
            if node is not None:
                self._release_node(credential.tenant_id, node)

    def _release_node(self, tenant_id: int, node: Node) -> None:
        nodes = self._nodes[tenant_id]
        nodes[node] -= 1
        if nodes[node] <= 0:
            del nodes[node]
        if not nodes:
            del self._nodes[tenant_id]

    def proxies(self, tenant_id: int):
        """The tenant's proxies that hold an ADS stream here (a live view: read it at once)."""
        return self._nodes.get(tenant_id, Counter()).keys()

    def credentials(self) -> set[Credential]:
        return {held.credential for held in self._held}

    def end_revoked(self, revoked: set[Credential]) -> int:
        """End the streams of these credentials; how many there were."""
        ending = [held for held in self._held if held.credential in revoked and not held.ended.is_set()]
        for held in ending:
            held.end(REVOKED.get(held.credential.kind, "the credential has been revoked"))
        return len(ending)
