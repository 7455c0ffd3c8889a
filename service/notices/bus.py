"""The notice-bus interface, and the in-process bus used in development."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from .notice import ChangeNotice

logger = logging.getLogger("service.notices")

Handler = Callable[[ChangeNotice], None]
ReconnectHandler = Callable[[], None]


class NoticeBusError(Exception):
    """The bus could not publish or subscribe (for example, Redis is unreachable)."""


class Subscription(Protocol):
    """A live subscription; ``close()`` it (or use it as a context manager).

    Once ``close()`` returns, the handler is not running (unless ``close()`` was
    called from inside the handler) and will not be called again. ``close()`` is
    idempotent.
    """

    def close(self) -> None: ...

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@runtime_checkable
class NoticeBus(Protocol):
    """Carries :class:`ChangeNotice` from the API to xDS replicas and workers.

    ``publish(notice)`` sends a notice to every current subscriber. The API calls
    it after the change has committed (``transaction.on_commit``). It is a
    blocking call; asyncio code calls it with ``asyncio.to_thread``.

    ``subscribe(handler, *, on_reconnect=None)`` calls ``handler(notice)`` for
    every notice published from then on, until the returned subscription is
    closed. The rules every implementation keeps:

    * Handlers may be called from ANY thread: the publisher's thread for the
      in-process bus, a background thread (one per subscription) for Redis.
      An asyncio consumer (the grpc.aio xDS server) therefore never touches
      its loop from the handler directly, but marshals onto it::

          loop = asyncio.get_running_loop()
          sub = bus.subscribe(
              lambda n: loop.call_soon_threadsafe(queue.put_nowait, n))

    * One subscription's handler is never called concurrently with itself, and
      sees notices in publish order. Handlers should be quick (hand the notice
      off and return): a slow handler delays the notices behind it.
    * A handler that raises is logged; delivery to other handlers and of later
      notices goes on.
    * Delivery is at most once. If a bus can lose notices (Redis: while the
      subscriber is reconnecting), it calls ``on_reconnect()`` once it is
      subscribed again; the consumer then re-reads what it serves from the
      database. ``on_reconnect`` follows the same thread and error rules.
    """

    def publish(self, notice: ChangeNotice) -> None: ...

    def ping(self) -> None:
        """Raise NoticeBusError unless a publish could go through now."""

    def subscribe(
        self, handler: Handler, *, on_reconnect: ReconnectHandler | None = None
    ) -> Subscription: ...


def call_handler(handler: Callable[..., None], *args: object) -> None:
    """Call a subscriber callback; log, and swallow, whatever it raises."""
    try:
        handler(*args)
    except Exception:
        logger.exception("notice handler %r failed on %r", handler, args[0] if args else None)


def check_subscriber(handler: object, on_reconnect: object) -> None:
    if not callable(handler):
        raise TypeError(f"handler must be callable, not {type(handler).__name__}")
    if on_reconnect is not None and not callable(on_reconnect):
        raise TypeError(f"on_reconnect must be callable, not {type(on_reconnect).__name__}")


def check_notice(notice: object) -> None:
    if not isinstance(notice, ChangeNotice):
        raise TypeError(f"publish() takes a ChangeNotice, not {type(notice).__name__}")


class _InProcessSubscription(Subscription):
    def __init__(self, bus: InProcessBus, key: int, handler: Handler) -> None:
        self._bus = bus
        self._key = key
        self._handler = handler
        # Held while the handler runs, so a handler never runs concurrently with
        # itself and close() waits for a call in flight on another thread.
        # Re-entrant, so the handler may close its own subscription (or publish).
        self._lock = threading.RLock()
        self._closed = False

    def _deliver(self, notice: ChangeNotice) -> None:
        with self._lock:
            if not self._closed:
                call_handler(self._handler, notice)

    def close(self) -> None:
        self._bus._remove(self._key)
        with self._lock:
            self._closed = True

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<InProcessBus subscription {self._key} {state} handler={self._handler!r}>"


class InProcessBus:
    """A bus inside one process, for development and tests.

    Thread-safe. ``publish`` calls every current handler synchronously, on the
    publisher's thread, before it returns. It never loses a notice, so it never
    calls ``on_reconnect``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: dict[int, _InProcessSubscription] = {}
        self._keys = itertools.count()

    def ping(self) -> None:
        """Always reachable: it lives in this process."""

    def publish(self, notice: ChangeNotice) -> None:
        check_notice(notice)
        with self._lock:
            current = list(self._subscriptions.values())
        # Called outside the bus lock, so handlers may subscribe, close or publish.
        for subscription in current:
            subscription._deliver(notice)

    def subscribe(
        self, handler: Handler, *, on_reconnect: ReconnectHandler | None = None
    ) -> Subscription:
        check_subscriber(handler, on_reconnect)
        with self._lock:
            key = next(self._keys)
            subscription = _InProcessSubscription(self, key, handler)
            self._subscriptions[key] = subscription
        return subscription

    def _remove(self, key: int) -> None:
        with self._lock:
            self._subscriptions.pop(key, None)

    def __repr__(self) -> str:
        return f"<InProcessBus subscribers={len(self._subscriptions)}>"
