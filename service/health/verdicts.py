"""The verdict rules, as pure functions (no ORM, no clock): how one region's
probe results move its state, and how the regions' states make an endpoint's
verdict. service/health/recording.py applies them to the stored rows.

Per region, a consecutive-result state machine with the health check's
thresholds:

- UNKNOWN (never decided) becomes HEALTHY on ONE success, and UNHEALTHY after
  ``unhealthy_threshold`` consecutive failures;
- HEALTHY becomes UNHEALTHY after ``unhealthy_threshold`` consecutive failures;
- UNHEALTHY becomes HEALTHY after ``healthy_threshold`` consecutive successes.

Across regions, only fresh regions count: one whose last result is older than
three check intervals (plus the probe timeout, since a round's result lands up
to that long after the round starts) is stale and ignored, so a region whose
workers are down never flips a verdict. Of the fresh regions:

- UNHEALTHY when more than half of them say UNHEALTHY;
- otherwise HEALTHY when at least one says HEALTHY (an even split is HEALTHY:
  a region that cannot reach an endpoint may be the one with the network
  problem, and keeping an endpoint that half the world reaches loses less than
  dropping it);
- otherwise (no fresh region, or only undecided ones) the verdict stays as it was.
"""
from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import models

# A region is stale once its last result is this many check intervals old
# (plus the probe's timeout).
STALE_AFTER_INTERVALS = 3


class Health(models.TextChoices):
    # Envoy's core.v3.HealthStatus names: what EDS carries.
    UNKNOWN = "UNKNOWN"
    HEALTHY = "HEALTHY"
    UNHEALTHY = "UNHEALTHY"


@dataclass(frozen=True)
class Thresholds:
    healthy: int
    unhealthy: int


@dataclass(frozen=True)
class RegionState:
    """One region's view of one endpoint: its state and the run of results behind it."""

    health: str = Health.UNKNOWN
    successes: int = 0
    failures: int = 0


def after_result(state: RegionState, ok: bool, thresholds: Thresholds) -> RegionState:
    """The region's state after one more probe result."""
    if ok:
        successes = state.successes + 1
        recovered = state.health == Health.UNKNOWN or successes >= thresholds.healthy
        health = Health.HEALTHY if recovered else state.health
        return RegionState(health, successes, 0)
    failures = state.failures + 1
    health = Health.UNHEALTHY if failures >= thresholds.unhealthy else state.health
    return RegionState(health, 0, failures)


def stale_after(check_interval_sec: float, timeout_sec: float) -> datetime.timedelta:
    """How old a region's last result may be and still count."""
    return datetime.timedelta(seconds=STALE_AFTER_INTERVALS * check_interval_sec + timeout_sec)


def fresh_states(regions: Iterable[tuple[str, datetime.datetime | None]], now: datetime.datetime,
                 max_age: datetime.timedelta) -> list[str]:
    """The states of the regions, given as (state, probed_at), whose last result is fresh."""
    return [health for health, probed_at in regions if probed_at is not None and now - probed_at <= max_age]


def verdict(previous: str, fresh: list[str]) -> str:
    """An endpoint's verdict from its fresh regions' states (see the module's rules)."""
    unhealthy = sum(1 for health in fresh if health == Health.UNHEALTHY)
    if 2 * unhealthy > len(fresh):
        return Health.UNHEALTHY
    if Health.HEALTHY in fresh:
        return Health.HEALTHY
    return previous
