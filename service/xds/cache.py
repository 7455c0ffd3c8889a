"""Snapshots by key, and watches on them: where translation and the stream
server meet (go-control-plane's SnapshotCache). No gRPC, no ORM.

The feeder (sync.py) calls :meth:`SnapshotCache.set`, from any thread; a
stream calls :meth:`SnapshotCache.watch` on its event loop and is woken, on
that loop, whenever the snapshot of its key is replaced. A watch on a key that
has no snapshot yet asks the feeder for one through ``on_missing``. When the
last watch of a key closes, its snapshot goes too: keys carry the locality a
proxy claims, so only those of open streams are kept.
"""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass

from service.xds.snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class CacheKey:
    """Proxies of one mesh in one cloud region see the same snapshot."""

    tenant: str
    mesh: str
    cloud: str = ""
    region: str = ""

    @property
    def mesh_key(self) -> tuple[str, str]:
        return (self.tenant, self.mesh)


class Watch:
    """A stream's interest in one key; ``close()`` it when the stream ends."""

    def __init__(self, cache: SnapshotCache, key: CacheKey, wake: Callable[[], None], loop: asyncio.AbstractEventLoop):
        self.key = key
        self._cache = cache
        self._wake = wake
        self._loop = loop

    def notify(self) -> None:
        """Call ``wake`` on the watch's loop, whichever thread this runs on."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._wake()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake)

    def close(self) -> None:
        self._cache._unwatch(self)


class SnapshotCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshots: dict[CacheKey, Snapshot] = {}
        self._watches: dict[CacheKey, set[Watch]] = {}
        # Set by the feeder: called (outside the lock) when a key without a
        # snapshot gets its first watch.
        self.on_missing: Callable[[CacheKey], None] | None = None

    def get(self, key: CacheKey) -> Snapshot | None:
        return self._snapshots.get(key)

    def set(self, key: CacheKey, snapshot: Snapshot) -> None:
        """Replace the key's snapshot and wake its watches (if it changed)."""
        with self._lock:
            if self._snapshots.get(key) is snapshot:
                return
            self._snapshots[key] = snapshot
            watches = list(self._watches.get(key, ()))
        for watch in watches:
            watch.notify()

    def watch(self, key: CacheKey, wake: Callable[[], None]) -> Watch:
        """Call ``wake()`` on the running loop whenever the key's snapshot is set."""
        watch = Watch(self, key, wake, asyncio.get_running_loop())
        with self._lock:
            self._watches.setdefault(key, set()).add(watch)
            missing = key not in self._snapshots
        if missing and self.on_missing is not None:
            self.on_missing(key)
        return watch

    def _unwatch(self, watch: Watch) -> None:
        with self._lock:
            watches = self._watches.get(watch.key)
            if watches is not None:
                watches.discard(watch)
                if not watches:
                    del self._watches[watch.key]
                    # Its locality came from a proxy: keep no snapshot for it
                    # (a new watch asks the feeder, which has the translation).
                    self._snapshots.pop(watch.key, None)

    def watched_keys(self, tenant: str | None = None, mesh: str | None = None) -> set[CacheKey]:
        """Keys with at least one watch, optionally of one mesh."""
        with self._lock:
            keys = set(self._watches)
        return {k for k in keys if (tenant, mesh) == (None, None) or k.mesh_key == (tenant, mesh)}

    def keys(self, tenant: str, mesh: str) -> set[CacheKey]:
        """Keys of one mesh that have a snapshot or a watch."""
        with self._lock:
            keys = set(self._snapshots) | set(self._watches)
        return {k for k in keys if k.mesh_key == (tenant, mesh)}

    def meshes(self) -> set[tuple[str, str]]:
        with self._lock:
            keys = set(self._snapshots) | set(self._watches)
        return {k.mesh_key for k in keys}

    def watch_count(self) -> int:
        with self._lock:
            return sum(len(w) for w in self._watches.values())

    def forget(self, tenant: str, mesh: str) -> None:
        """Drop the mesh's snapshots that nobody watches (its proxies are gone)."""
        with self._lock:
            for key in [k for k in self._snapshots if k.mesh_key == (tenant, mesh) and k not in self._watches]:
                del self._snapshots[key]
