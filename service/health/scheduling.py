"""Probe rounds: which health checks are due for one, each claimed with a
compare-and-swap on its ProbeSchedule row (so two schedulers, say two beats,
never both start the same round), and what a round covers: the endpoints of
the groups behind the backend services that use the check, from each of the
check's source regions."""
from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings

from service.health.models import ProbeSchedule
from service.mesh.models import Endpoint, HealthCheck


@dataclass(frozen=True)
class Round:
    """One probe round of one health check, claimed by this scheduler."""

    health_check_id: int
    round_at: datetime.datetime
    # A task of this round not started by then is dropped: the next round is under way.
    expires_at: datetime.datetime
    regions: tuple[str, ...]
    endpoint_ids: tuple[int, ...]

    def batches(self, size: int) -> Iterator[list[int]]:
        for start in range(0, len(self.endpoint_ids), size):
            yield list(self.endpoint_ids[start:start + size])


def next_round_at(scheduled: datetime.datetime, now: datetime.datetime, interval: float) -> datetime.datetime:
    """The round after one scheduled at ``scheduled`` and started at ``now``:
    one interval later, keeping the cadence, unless the scheduler fell that far
    behind (then one interval from now, rather than a burst of rounds)."""
    step = datetime.timedelta(seconds=interval)
    following = scheduled + step
    return following if following > now else now + step


def claim_due_rounds(now: datetime.datetime, early: datetime.timedelta = datetime.timedelta(0)) -> list[Round]:
    """Claims every round due by ``now + early``; a round another scheduler
    claimed first is left to it. A periodic scheduler passes half its period
    as ``early``, so a round due just after a tick starts then, not a whole
    period late."""
    schedule_new_checks(now)
    rounds = []
    for schedule in ProbeSchedule.objects.filter(next_round_at__lte=now + early).select_related("health_check"):
        check = schedule.health_check
        following = next_round_at(schedule.next_round_at, now, check.check_interval_sec)
        claimed = (ProbeSchedule.objects.filter(pk=schedule.pk, next_round_at=schedule.next_round_at)
                   .update(next_round_at=following, updated_at=now))
        if claimed != 1:  # another scheduler got there first
            continue
        rounds.append(Round(
            health_check_id=check.pk,
            round_at=now,
            expires_at=now + datetime.timedelta(seconds=check.check_interval_sec),
            regions=source_regions(check),
            endpoint_ids=endpoints_checked_by(check),
        ))
    return rounds


def schedule_new_checks(now: datetime.datetime) -> None:
    """A schedule row, due now, for each health check that has none yet."""
    unscheduled = (HealthCheck.objects.exclude(pk__in=ProbeSchedule.objects.values("health_check_id"))
                   .values_list("pk", "tenant_id"))
    ProbeSchedule.objects.bulk_create(
        [ProbeSchedule(tenant_id=tenant_id, health_check_id=pk, next_round_at=now) for pk, tenant_id in unscheduled],
        ignore_conflicts=True,
    )


def source_regions(check: HealthCheck) -> tuple[str, ...]:
    """The regions the check is probed from: its own list, or every region that runs workers."""
    return tuple(check.source_regions or settings.HEALTH_REGIONS)


def endpoints_checked_by(check: HealthCheck) -> tuple[int, ...]:
    """The ids of the endpoints in the groups of the backend services that use the check."""
    endpoints = (Endpoint.objects.for_tenant(check.tenant_id)
                 .filter(group__backends__backend_service__health_checks=check)
                 .order_by("pk").values_list("pk", flat=True).distinct())
    return tuple(endpoints)
