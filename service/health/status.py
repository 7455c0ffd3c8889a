"""What the API shows of the workers' findings (read-only): a backend
service's health (each endpoint's verdict, each source region's probe state,
and whether the service fails open) and the verdicts of an endpoint group's
endpoints. Each is read in a fixed number of queries, whatever the number of
endpoints."""
import datetime
from collections import defaultdict
from dataclasses import dataclass

from django.db.models import prefetch_related_objects

from service.health.failopen import fails_open

from service.health.models import Health, RegionProbe, Verdict
from service.mesh.models import BackendServiceHealthCheck


@dataclass(frozen=True)
class RegionState:
    """One source region's view of an endpoint: its consecutive-result state
    and its last probe."""

    region: str
    state: str
    probed_at: datetime.datetime | None
    latency_ms: float | None
    probed_address: str
    error: str


@dataclass(frozen=True)
class EndpointHealth:
    address: str
    port: int
    health: str
    changed_at: datetime.datetime | None
    regions: tuple[RegionState, ...]


@dataclass(frozen=True)
class BackendHealth:
    endpoint_group: str
    endpoints: tuple[EndpointHealth, ...]


@dataclass(frozen=True)
class ServiceHealth:
    backend_service: str
    health_check: str | None
    failing_open: bool
    backends: tuple[BackendHealth, ...]


@dataclass(frozen=True)
class EndpointVerdict:
    """An endpoint's verdict under one health check that applies to it."""

    health_check: str
    health: str
    changed_at: datetime.datetime | None


def service_health(service) -> ServiceHealth:
    """`service`'s health, its health checks and backends (with their
    endpoint groups) prefetched: three queries (the groups' endpoints, the
    verdicts, the region states), however many endpoints it has."""
    check = next(iter(service.health_checks.all()), None)  # at most one (the API's rule)
    backends = list(service.backends.all())
    groups = [backend.endpoint_group for backend in backends]
    prefetch_related_objects(groups, "endpoints")
    verdicts, regions = findings(check, groups) if check else ({}, {})
    shown = tuple(
        BackendHealth(group.name, tuple(endpoint_health(endpoint, verdicts, regions)
                                        for endpoint in group.endpoints.all()))
        for group in groups
    )
    # What the proxies decide from (translation uses the same function): the
    # endpoints of the backends the service serves from, capacity above 0.
    serving = {backend.endpoint_group.name for backend in backends
               if backend.capacity_scaler * backend.endpoint_group.capacity_scaler > 0}
    healths = [endpoint.health for backend in shown if backend.endpoint_group in serving
               for endpoint in backend.endpoints]
    dropping = bool((service.failover or {}).get("drop_traffic_if_unhealthy"))
    return ServiceHealth(service.name, check.name if check else None,
                         fails_open(healths, drop_traffic_if_unhealthy=dropping), shown)


def findings(check, groups) -> tuple[dict[int, Verdict], dict[int, list[RegionState]]]:
    """The verdicts and the region states of `check` for the endpoints of
    `groups`, by endpoint id (regions in name order)."""
    scope = {"tenant_id": check.tenant_id, "health_check": check, "endpoint__group__in": groups}
    verdicts = {verdict.endpoint_id: verdict for verdict in Verdict.objects.filter(**scope)}
    regions = defaultdict(list)
    for probe in RegionProbe.objects.filter(**scope).order_by("region"):
        regions[probe.endpoint_id].append(RegionState(
            probe.region, probe.state, probe.probed_at, probe.latency_ms, probe.address, probe.error,
        ))
    return verdicts, regions


def endpoint_health(endpoint, verdicts, regions) -> EndpointHealth:
    """Never probed (or no health check): UNKNOWN, with no regions."""
    verdict = verdicts.get(endpoint.pk)
    return EndpointHealth(
        endpoint.address, endpoint.port, verdict.health if verdict else Health.UNKNOWN,
        verdict.changed_at if verdict else None, tuple(regions.get(endpoint.pk, ())),
    )


def attach_endpoint_verdicts(groups):
    """Give each endpoint of `groups` its verdicts, as `endpoint.verdicts`:
    one per health check of the backend services that use its group (in
    name order), UNKNOWN where there is none yet. Two queries for any number
    of groups (one if no service with a health check uses them), besides
    the groups' endpoints if they are not prefetched."""
    prefetch_related_objects(groups, "endpoints")
    checks = applying_checks(groups)
    found = {}
    if checks:
        rows = Verdict.objects.filter(endpoint__group__in=[group for group in groups if group.pk in checks])
        found = {(endpoint_id, check_id): (health, changed_at) for endpoint_id, check_id, health, changed_at
                 in rows.values_list("endpoint_id", "health_check_id", "health", "changed_at")}
    for group in groups:
        applying = sorted(checks.get(group.pk, {}).items(), key=lambda item: item[1])
        for endpoint in group.endpoints.all():
            endpoint.verdicts = [
                EndpointVerdict(name, *found.get((endpoint.pk, check_id), (Health.UNKNOWN, None)))
                for check_id, name in applying
            ]


def applying_checks(groups) -> dict[int, dict[int, str]]:
    """By group id, the health checks (id: name) of the backend services that
    use the group."""
    links = BackendServiceHealthCheck.objects.filter(backend_service__backends__endpoint_group__in=groups)
    checks = defaultdict(dict)
    for group_id, check_id, name in links.values_list(
        "backend_service__backends__endpoint_group_id", "health_check_id", "health_check__name"
    ).distinct():
        checks[group_id][check_id] = name
    return checks
