"""The change-notice bus.

After a change to a tenant's mesh policy commits, the API publishes a
:class:`ChangeNotice`; xDS replicas and Celery workers subscribe::

    from service.notices import ChangeNotice, get_bus

    transaction.on_commit(lambda: get_bus().publish(
        ChangeNotice(tenant="acme", mesh="prod", revision=42,
                     kinds=("http-routes",), resources=(("http-routes", "web"),))))

    sub = get_bus().subscribe(handler)   # handler(notice), from any thread
    ...
    sub.close()

:class:`NoticeBus` is the interface (read its docstring for the threading
rules); :class:`RedisBus` is production, :class:`InProcessBus` development.
:func:`get_bus` returns the process's bus, chosen by ``settings.NOTICE_BUS``.
"""

from __future__ import annotations

import threading

from .bus import (
    Handler,
    InProcessBus,
    NoticeBus,
    NoticeBusError,
    ReconnectHandler,
    Subscription,
)
from .notice import ChangeNotice
from .redis_bus import RedisBus

__all__ = [
    "ChangeNotice",
    "Handler",
    "InProcessBus",
    "NoticeBus",
    "NoticeBusError",
    "ReconnectHandler",
    "RedisBus",
    "Subscription",
    "get_bus",
    "reset_bus",
]

_bus: NoticeBus | None = None
_bus_lock = threading.Lock()


def get_bus() -> NoticeBus:
    """The process-wide bus, made on first use from Django settings.

    ``settings.NOTICE_BUS`` is ``"redis"`` (a :class:`RedisBus` on
    ``settings.REDIS_URL``) or ``"inprocess"`` (an :class:`InProcessBus`);
    anything else raises ``ImproperlyConfigured``.
    """
    global _bus
    with _bus_lock:
        if _bus is None:
            _bus = _bus_from_settings()
        return _bus


def reset_bus() -> None:
    """Forget the process-wide bus (for tests), so the next get_bus() reads settings again.

    Subscriptions made on the old bus are left to their owners to close.
    """
    global _bus
    with _bus_lock:
        bus, _bus = _bus, None
    if isinstance(bus, RedisBus):
        bus.close()


def _bus_from_settings() -> NoticeBus:
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    kind = str(getattr(settings, "NOTICE_BUS", "inprocess")).strip().lower()
    if kind == "redis":
        url = getattr(settings, "REDIS_URL", "")
        if not url:
            raise ImproperlyConfigured("NOTICE_BUS is 'redis' but REDIS_URL is not set")
        return RedisBus(url, channel=getattr(settings, "NOTICE_CHANNEL", "interlock:notices"),
                        socket_timeout=settings.REDIS_TIMEOUT)
    if kind == "inprocess":
        return InProcessBus()
    raise ImproperlyConfigured(
        f"NOTICE_BUS must be 'redis' or 'inprocess', not {settings.NOTICE_BUS!r}"
    )
