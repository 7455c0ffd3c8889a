"""The production notice bus: Redis pub/sub."""

from __future__ import annotations

import logging
import threading
import time

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from .bus import (
    Handler,
    NoticeBusError,
    ReconnectHandler,
    Subscription,
    call_handler,
    check_notice,
    check_subscriber,
)
from .notice import ChangeNotice

logger = logging.getLogger("service.notices")

DEFAULT_CHANNEL = "interlock:notices"

#: Reconnect backoff of a subscriber: starts here, doubles, and is capped.
BACKOFF_INITIAL = 0.1
BACKOFF_MAX = 5.0


class RedisBus:
    """Change notices over Redis pub/sub on one channel.

    ``publish`` is one ``PUBLISH`` of the notice's JSON; it raises
    :class:`NoticeBusError` if Redis cannot be reached (after two quick retries)
    or does not answer within ``socket_timeout`` seconds.

    ``subscribe`` starts one daemon thread per subscription, holding its own
    connection, and returns once Redis has confirmed the ``SUBSCRIBE``, so a
    notice published after ``subscribe`` returns is delivered. If Redis is not
    reachable within ``subscribe_timeout`` seconds, it raises
    :class:`NoticeBusError`. The handler is called from that thread (see
    :class:`~service.notices.bus.NoticeBus` for what asyncio consumers do).

    The subscriber thread does not die: when the connection drops (or stops
    answering PINGs for ``health_check_interval`` seconds), it logs, reconnects
    with backoff (0.1 s doubling to 5 s) and subscribes again, then calls
    ``on_reconnect``, since notices published in between are lost. Messages
    that are not valid notices are logged and skipped.

    Subscriptions must be made in the process that uses them (after a fork,
    for Celery's prefork pool), as threads do not survive ``fork()``.
    """

    def __init__(
        self,
        url: str,
        channel: str = DEFAULT_CHANNEL,
        *,
        subscribe_timeout: float = 5.0,
        poll_interval: float = 0.25,
        health_check_interval: float = 15.0,
        socket_timeout: float = 5.0,
    ) -> None:
        if not url:
            raise ValueError("RedisBus needs a Redis URL")
        self.url = url
        self.channel = channel
        self.subscribe_timeout = subscribe_timeout
        self.poll_interval = poll_interval
        self.health_check_interval = health_check_interval
        self.socket_timeout = socket_timeout
        # Retries quickly when a connection fails, e.g. a pooled one went stale
        # because Redis restarted: a duplicate notice is harmless, a lost one is
        # not. Not when Redis accepted the connection but did not answer in
        # socket_timeout: a hung server would only make the publisher (an API
        # request, after its commit) wait that long again.
        self._client = self._make_client(
            Retry(ExponentialBackoff(cap=0.5, base=0.05), 2, supported_errors=(redis.ConnectionError,)))

    def _make_client(self, retry: Retry) -> redis.Redis:
        return redis.Redis.from_url(
            self.url,
            socket_timeout=self.socket_timeout,
            socket_connect_timeout=self.socket_timeout,
            socket_keepalive=True,
            retry=retry,
        )

    def publish(self, notice: ChangeNotice) -> None:
        check_notice(notice)
        try:
            self._client.publish(self.channel, notice.to_json())
        except redis.RedisError as exc:
            raise NoticeBusError(f"could not publish to {self.channel!r}: {exc}") from exc

    def ping(self) -> None:
        try:
            self._client.ping()
        except redis.RedisError as exc:
            raise NoticeBusError(f"Redis does not answer: {exc}") from exc

    def subscribe(
        self, handler: Handler, *, on_reconnect: ReconnectHandler | None = None
    ) -> Subscription:
        check_subscriber(handler, on_reconnect)
        # No retries inside redis-py: the subscriber thread owns reconnection,
        # so that its backoff and on_reconnect are the only ones in play.
        client = self._make_client(Retry(NoBackoff(), 0))
        subscription = _RedisSubscription(self, client, handler, on_reconnect)
        subscription._start()
        return subscription

    def close(self) -> None:
        """Release the publishing connections (subscriptions are closed by their owners)."""
        self._client.close()

    def __repr__(self) -> str:
        return f"<RedisBus {self.channel!r}>"


class _RedisSubscription(Subscription):
    def __init__(
        self,
        bus: RedisBus,
        client: redis.Redis,
        handler: Handler,
        on_reconnect: ReconnectHandler | None,
    ) -> None:
        self._bus = bus
        self._client = client
        self._channel = bus.channel
        self._handler = handler
        self._on_reconnect = on_reconnect
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        self._last_error: BaseException | None = None
        self._backoff = BACKOFF_INITIAL
        self._thread = threading.Thread(
            target=self._run, name=f"notices:{bus.channel}", daemon=True
        )

    @property
    def alive(self) -> bool:
        """Whether the subscriber thread is running (it is, until ``close()``)."""
        return self._thread.is_alive()

    def _start(self) -> None:
        self._thread.start()
        if not self._subscribed.wait(self._bus.subscribe_timeout):
            self.close()
            raise NoticeBusError(
                f"SUBSCRIBE to {self._channel!r} was not confirmed within "
                f"{self._bus.subscribe_timeout}s (last error: {self._last_error!r})"
            )

    def close(self) -> None:
        self._stop.set()
        if threading.current_thread() is self._thread:
            return  # closed from the handler: the loop ends when it returns
        # Bounded by poll_interval, or by socket_timeout while (re)connecting,
        # unless a handler call is in flight.
        deadline = self._bus.poll_interval + 2 * self._bus.socket_timeout + 1.0
        self._thread.join(deadline)
        if self._thread.is_alive():
            logger.warning(
                "notice subscriber on %r did not stop within %.1fs (handler still running?)",
                self._channel,
                deadline,
            )

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException:
            # _loop catches every Exception; this is the last word on anything else.
            logger.critical("notice subscriber on %r died", self._channel, exc_info=True)
            raise
        finally:
            self._client.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            pubsub = self._client.pubsub()
            try:
                pubsub.subscribe(self._channel)
                self._listen(pubsub)
                return  # stopped
            except Exception as exc:
                if self._stop.is_set():
                    return
                self._last_error = exc
                if isinstance(exc, (redis.RedisError, OSError)):
                    logger.warning(
                        "notice subscriber on %r lost Redis (%s: %s), reconnecting in %.1fs",
                        self._channel,
                        type(exc).__name__,
                        exc,
                        self._backoff,
                    )
                else:
                    logger.exception(
                        "notice subscriber on %r failed; reconnecting in %.1fs",
                        self._channel,
                        self._backoff,
                    )
            finally:
                try:
                    pubsub.close()
                except Exception:  # the connection is gone anyway
                    pass
            if self._stop.wait(self._backoff):
                return
            self._backoff = min(self._backoff * 2, BACKOFF_MAX)

    def _listen(self, pubsub: redis.client.PubSub) -> None:
        interval = self._bus.health_check_interval
        last_heard = time.monotonic()
        ping_sent_at: float | None = None
        while not self._stop.is_set():
            message = pubsub.get_message(timeout=self._bus.poll_interval)
            now = time.monotonic()
            if message is None:
                if ping_sent_at is None:
                    if now - last_heard >= interval:
                        pubsub.ping()
                        ping_sent_at = now
                elif now - ping_sent_at >= interval:
                    raise redis.ConnectionError(f"no reply to PING within {interval}s")
                continue
            last_heard, ping_sent_at = now, None
            kind = message.get("type")
            if kind == "message":
                self._dispatch(message.get("data"))
            elif kind == "subscribe":
                self._confirmed()

    def _confirmed(self) -> None:
        self._backoff = BACKOFF_INITIAL
        if not self._subscribed.is_set():
            self._subscribed.set()
            return
        logger.info("notice subscriber on %r reconnected", self._channel)
        if self._on_reconnect is not None and not self._stop.is_set():
            call_handler(self._on_reconnect)

    def _dispatch(self, data: object) -> None:
        try:
            notice = ChangeNotice.from_json(data)  # type: ignore[arg-type]
        except ValueError as exc:
            logger.warning(
                "notice subscriber on %r skipped a malformed message (%s): %.200r",
                self._channel,
                exc,
                data,
            )
            return
        if not self._stop.is_set():
            call_handler(self._handler, notice)

    def __repr__(self) -> str:
        state = "open" if not self._stop.is_set() else "closed"
        return f"<RedisBus subscription {self._channel!r} {state} handler={self._handler!r}>"
