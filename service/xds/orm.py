"""ORM work of the xDS server, off its event loop.

A small pool of threads runs every database call a replica makes (token
lookups, proxy records, policy loads), so the event loop never blocks on
Postgres and the replica holds at most ``threads`` database connections
however many streams it serves. Each call closes its thread's connection first
and after if it has gone stale or broken, as Django's request cycle does.
"""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from django.db import close_old_connections, connections


class OrmPool:
    def __init__(self, threads: int = 4):
        self.threads = threads
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="xds-orm")

    async def run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, _call, fn, args)

    def submit(self, fn, *args):
        """From any thread: a concurrent.futures.Future of ``fn(*args)``."""
        return self._executor.submit(_call, fn, args)

    def close(self) -> None:
        """Close every worker's connection, then stop the workers."""
        # One job per thread, held at a barrier so each lands on its own thread.
        barrier = threading.Barrier(self.threads)
        for _ in range(self.threads):
            self._executor.submit(_close_connections_at, barrier)
        self._executor.shutdown(wait=True, cancel_futures=False)


def _call(fn, args):
    close_old_connections()
    try:
        return fn(*args)
    finally:
        close_old_connections()


def _close_connections_at(barrier: threading.Barrier) -> None:
    try:
        barrier.wait(timeout=5)
    except threading.BrokenBarrierError:
        pass
    connections.close_all()
