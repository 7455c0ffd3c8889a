"""A deadline on every round trip to Postgres, kept by the client.

Postgres's statement_timeout cancels a statement that runs too long, but
only a server that runs can cancel: when Postgres is frozen (a stopped
process, a hung host) or the network drops packets without a reset, the
client waits in recv() for as long as the kernel keeps the connection open,
and a gunicorn worker waits with it until gunicorn kills it. So each round
trip (execute, commit, rollback, the health check of a reused connection) is
registered here with a deadline; a watchdog thread shuts down the socket of a
round trip past its deadline. The waiting call then fails at once with
psycopg's OperationalError, as if the server had dropped the connection, and
Django replaces the connection.

The deadline is the statement timeout plus a grace, so that a server that
runs answers first, with its own error.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time

logger = logging.getLogger(__name__)

# How often the watchdog looks: a stuck round trip fails at most this much after its deadline.
TICK_SEC = 0.25


class Watchdog:
    """Shuts down the socket of a round trip that outlives its deadline."""

    def __init__(self, tick: float = TICK_SEC):
        self.tick = tick
        self._lock = threading.Lock()
        self._watched: dict[Watched, tuple[float, int]] = {}  # round trip -> (deadline, socket's fd)
        self._thread: threading.Thread | None = None

    def watch(self, fd: int, seconds: float) -> Watched:
        """A context manager: while its block runs, the socket `fd` is shut down once `seconds` have passed."""
        return Watched(self, fd, seconds)

    def add(self, round_trip: Watched) -> None:
        with self._lock:
            self._watched[round_trip] = (time.monotonic() + round_trip.seconds, round_trip.fd)
            if self._thread is None or not self._thread.is_alive():  # first use, or a forked child
                self._thread = threading.Thread(target=self._run, name="postgres-deadlines", daemon=True)
                self._thread.start()

    def remove(self, round_trip: Watched) -> None:
        # Under the lock: once the round trip is over, its fd (which may be
        # closed and reused) is never touched.
        with self._lock:
            self._watched.pop(round_trip, None)

    def _run(self) -> None:
        while True:
            time.sleep(self.tick)
            now = time.monotonic()
            with self._lock:
                for round_trip, (deadline, fd) in list(self._watched.items()):
                    if deadline <= now:
                        del self._watched[round_trip]
                        shut_down(fd)


class Watched:
    """One round trip under a watchdog (a class rather than a generator: it runs on every statement)."""

    __slots__ = ("watchdog", "fd", "seconds")

    def __init__(self, watchdog: Watchdog, fd: int, seconds: float):
        self.watchdog = watchdog
        self.fd = fd
        self.seconds = seconds

    def __enter__(self) -> None:
        self.watchdog.add(self)

    def __exit__(self, *exc_info) -> None:
        self.watchdog.remove(self)


def shut_down(fd: int) -> None:
    logger.warning("Postgres did not answer within the deadline; dropping the connection")
    try:
        # A duplicate of the descriptor, closed here; the shutdown acts on the
        # socket both share, and the owner's blocked call returns.
        with socket.socket(fileno=os.dup(fd)) as sock:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed by the server or the owner
        pass


watchdog = Watchdog()
