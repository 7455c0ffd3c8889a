"""Recording one batch of probe results: each endpoint's state in the probing
region, the verdicts across regions of the endpoints whose state moved, and,
after commit, a change notice per mesh whose services' endpoints changed.

Every write is a compare-and-swap, so a batch delivered twice (a retried or
duplicated task) changes nothing the second time: a region's row takes a
result only from a round newer than the one it holds (``probed_at`` is the
round's start; the row is locked from that comparison to the commit), and a
verdict is written only over the value it was computed from. Verdict rows
are locked while they are recomputed, so of two regions recording the same
endpoint at once, the second sees the first's committed state."""
from __future__ import annotations

import datetime
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial

from django.db import transaction
from django.utils import timezone

from service import sql
from service.health.models import RegionProbe, Verdict
from service.health.verdicts import RegionState, Thresholds, after_result, fresh_states, stale_after, verdict
from service.mesh.models import BackendService, Endpoint, HealthCheck
from service.mesh.services import publish
from service.notices import ChangeNotice

ENDPOINT_HEALTH = "endpoint-health"
ADDRESS_MAX = RegionProbe._meta.get_field("address").max_length
ERROR_MAX = RegionProbe._meta.get_field("error").max_length
# What a result writes (updated_at is stamped by its field).
PROBE_FIELDS = ("state", "successes", "failures", "probed_at", "latency_ms", "address", "error", "updated_at")


@dataclass(frozen=True)
class Result:
    """One probe's result (workers.probing's ProbeResult has these fields): ``key`` is the endpoint's id."""

    key: int
    ok: bool
    latency_ms: float | None
    address: str
    error: str


def record_batch(check: HealthCheck, region: str, round_at: datetime.datetime,
                 results: Iterable[Result]) -> list[ChangeNotice]:
    """Applies one region's results of the round started at ``round_at``;
    returns the change notices published (after commit) for changed verdicts."""
    now = timezone.now()
    results = list(results)
    with transaction.atomic():
        endpoints = endpoints_of(check, results)
        moved = record_region_results(check, region, round_at, [r for r in results if r.key in endpoints])
        changed = update_verdicts(check, moved, now)
        notices = notices_for(check, {endpoints[pk]: health for pk, health in changed.items()})
        for notice in notices:
            transaction.on_commit(partial(publish, notice))
    return notices


def endpoints_of(check: HealthCheck, results: Iterable[Result]) -> dict[int, Endpoint]:
    """The endpoints the results are about that still exist, and are the check's tenant's."""
    keys = {result.key for result in results}
    return Endpoint.objects.for_tenant(check.tenant_id).select_related("group").in_bulk(keys)


def record_region_results(check: HealthCheck, region: str, round_at: datetime.datetime,
                          results: list[Result]) -> list[int]:
    """Moves the region's state of each endpoint by its result; the ids of the endpoints whose rows took one."""
    by_endpoint = {result.key: result for result in results}
    probes = RegionProbe.objects.for_tenant(check.tenant_id).filter(health_check=check, region=region)
    # Every writer inserts and locks rows in endpoint order, so two writers may
    # wait for each other but never deadlock.
    known = set(probes.filter(endpoint_id__in=by_endpoint).values_list("endpoint_id", flat=True))
    RegionProbe.objects.bulk_create(
        [RegionProbe(tenant_id=check.tenant_id, health_check=check, endpoint_id=pk, region=region)
         for pk in sorted(by_endpoint.keys() - known)],
        ignore_conflicts=True,
    )
    # Locked until commit, so the comparison with the round a row holds and
    # the write are one step: a compare-and-swap per row.
    rows = probes.filter(endpoint_id__in=by_endpoint).order_by("endpoint_id").select_for_update()
    thresholds = Thresholds(healthy=check.healthy_threshold, unhealthy=check.unhealthy_threshold)
    moved = []
    for row in rows:
        if row.probed_at is not None and row.probed_at >= round_at:
            continue  # this round, or a later one, is in already
        result = by_endpoint[row.endpoint_id]
        state = after_result(RegionState(row.state, row.successes, row.failures), result.ok, thresholds)
        row.state, row.successes, row.failures = state.health, state.successes, state.failures
        row.probed_at, row.latency_ms = round_at, result.latency_ms
        row.address, row.error = result.address[:ADDRESS_MAX], result.error[:ERROR_MAX]
        moved.append(row)
    sql.update_each(moved, PROBE_FIELDS)
    return [row.endpoint_id for row in moved]


def update_verdicts(check: HealthCheck, endpoint_ids: list[int], now: datetime.datetime) -> dict[int, str]:
    """Recomputes the verdicts of the endpoints from all their regions' rows;
    the new health of each verdict that changed."""
    if not endpoint_ids:
        return {}
    verdicts = Verdict.objects.for_tenant(check.tenant_id).filter(health_check=check)
    current = locked(verdicts, endpoint_ids)
    missing = set(endpoint_ids) - {row.endpoint_id for row in current}
    if missing:  # an endpoint's first result
        Verdict.objects.bulk_create(
            [Verdict(tenant_id=check.tenant_id, health_check=check, endpoint_id=pk) for pk in sorted(missing)],
            ignore_conflicts=True,
        )
        current = locked(verdicts, endpoint_ids)
    regions = defaultdict(list)
    rows = (RegionProbe.objects.for_tenant(check.tenant_id).filter(health_check=check, endpoint_id__in=endpoint_ids)
            .values_list("endpoint_id", "state", "probed_at"))
    for endpoint_id, state, probed_at in rows:
        regions[endpoint_id].append((state, probed_at))
    max_age = stale_after(check.check_interval_sec, check.timeout_sec)
    changed = {}
    for row in current:
        health = verdict(row.health, fresh_states(regions[row.endpoint_id], now, max_age))
        if health == row.health:
            continue
        updated = verdicts.filter(pk=row.pk, health=row.health).update(health=health, changed_at=now, updated_at=now)
        if updated == 1:  # else another worker got there first, from newer rows
            changed[row.endpoint_id] = health
    return changed


def locked(verdicts, endpoint_ids: list[int]) -> list[Verdict]:
    # In endpoint order, as every writer locks them: never a deadlock.
    return list(verdicts.filter(endpoint_id__in=endpoint_ids).order_by("endpoint_id").select_for_update())


def notices_for(check: HealthCheck, changed: dict[Endpoint, str]) -> list[ChangeNotice]:
    """A notice per mesh naming the services that use the check and the changed
    endpoints of their groups, with their new health."""
    if not changed:
        return []
    services = (BackendService.objects.for_tenant(check.tenant_id).filter(health_checks=check)
                .select_related("mesh", "tenant").prefetch_related("backends"))
    by_mesh = defaultdict(set)
    for service in services:
        groups = {backend.endpoint_group_id for backend in service.backends.all()}
        for endpoint, health in changed.items():
            if endpoint.group_id in groups:
                by_mesh[service.mesh].add((service.name, endpoint.group.name, endpoint.address, endpoint.port, health))
    return [endpoint_health_notice(check.tenant.name, mesh.name, mesh.revision, rows)
            for mesh, rows in sorted(by_mesh.items(), key=lambda item: item[0].name)]


def endpoint_health_notice(tenant: str, mesh: str, revision: int, rows: set[tuple]) -> ChangeNotice:
    # A verdict is not policy: the notice carries the mesh's current revision.
    services = sorted({row[0] for row in rows})
    return ChangeNotice(tenant=tenant, mesh=mesh, revision=revision, kinds=(ENDPOINT_HEALTH,),
                        resources=tuple(("backend-services", name) for name in services),
                        endpoints=tuple(sorted(rows)))

