"""A least-recently-used map bounded in entries and in bytes.

What a replica memoizes (selections, serialized delta resources) is shaped by
what its proxies ask for, so a count of entries alone bounds nothing: one
entry may hold megabytes. Each entry here is weighed when it is stored (the
caller says what it costs) and the oldest are dropped until both bounds hold;
an entry heavier than the whole budget is not kept at all.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class BoundedLru(Generic[V]):
    """Safe to share between threads (replicas in one process share module-level ones)."""

    def __init__(self, max_entries: int, max_bytes: int):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> V | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            self._entries.move_to_end(key)
            return found[0]

    def put(self, key: Hashable, value: V, size: int) -> None:
        if size > self.max_bytes:
            return
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._bytes -= previous[1]
            self._entries[key] = (value, size)
            self._bytes += size
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped

    @property
    def bytes(self) -> int:
        """What the entries held weigh, as their callers weighed them."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)
