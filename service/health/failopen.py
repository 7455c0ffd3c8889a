"""Fail open: when every endpoint a backend service serves from is
UNHEALTHY, its proxies get them all as they would without a health check
(health UNKNOWN), rather than none: proxyless gRPC has no panic mode and
would fail every request, and a health check that fails everywhere at once
more often says the check is wrong than that every endpoint is.

A service whose failover sets ``drop_traffic_if_unhealthy`` asked for the
opposite (Traffic Director's meaning of it): it never fails open.

Pure, and without Django, so the xDS translation (what the proxies get) and
the API (what a user reads) decide it with the same function.
"""
from __future__ import annotations

from collections.abc import Iterable

UNHEALTHY = "UNHEALTHY"


def fails_open(healths: Iterable[str], *, drop_traffic_if_unhealthy: bool = False) -> bool:
    """Whether a service whose served endpoints have these health values
    (``"UNKNOWN"``, ``"HEALTHY"``, ``"UNHEALTHY"``; the endpoints of every
    backend with capacity above 0, across all localities) fails open. A
    service with no endpoints has nothing to fail open to."""
    if drop_traffic_if_unhealthy:
        return False
    found = False
    for health in healths:
        if health != UNHEALTHY:
            return False
        found = True
    return found
