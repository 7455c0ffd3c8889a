"""A mesh's stored policy as plain immutable values: the one module of the xDS
side that reads the ORM.

:func:`load_policy` reads everything the proxies of one mesh depend on in one
consistent read, the health verdicts of its endpoints included, and returns a
:class:`MeshPolicy`; translation
(``translate.py``) is a pure function of that value. The shapes follow the
API's (``docs/api.md``): nested blocks the API stores as JSON (route rules,
circuit breakers, ...) stay JSON, frozen (:func:`freeze`), so translation reads
them with the same keys the API documents.

Values compare by content, and cheaply: translation decides what to rebuild by
comparing a service or route with the one of the previous policy. What
changes without a policy change is applied to a held policy by pure methods
that keep every untouched part the same object: a verdict
(:meth:`MeshPolicy.with_endpoint_health`) and what host names resolve to
(:meth:`MeshPolicy.with_addresses`).
"""
from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from django.db import connection, transaction

from service.health.failopen import fails_open
from service.xds.resolve import is_ip

# An endpoint's health as EDS carries it (Envoy's core.v3.HealthStatus
# names): the verdict of its service's health check on it, UNKNOWN until
# there is one (UNKNOWN endpoints receive traffic).
UNKNOWN = "UNKNOWN"
HEALTHY = "HEALTHY"
UNHEALTHY = "UNHEALTHY"


class FrozenDict(dict):
    """A JSON object that cannot change. A dict underneath, so equality is
    the dict's own (fast, in C) and reading it is plain dict reading."""

    __slots__ = ()

    def _immutable(self, *args, **kwargs):
        raise TypeError("policy values are immutable")

    __setitem__ = __delitem__ = __ior__ = _immutable
    clear = pop = popitem = setdefault = update = _immutable

    def __hash__(self):
        return hash(frozenset(self.items()))

    def __repr__(self):
        return f"FrozenDict({dict.__repr__(self)})"

    def __reduce__(self):
        return (FrozenDict, (dict(self),))


EMPTY = FrozenDict()


def freeze(value: Any) -> Any:
    """JSON (dicts, lists, scalars) as immutable values: FrozenDict and tuples."""
    if isinstance(value, dict):
        return FrozenDict((key, freeze(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(freeze(item) for item in value)
    return value


def thaw(value: Any) -> Any:
    """The inverse of :func:`freeze`, for protobuf's Struct."""
    if isinstance(value, dict):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [thaw(item) for item in value]
    return value


# The parts of a mesh are named tuples: immutable, and compared in C, which is
# what lets translate() check a thousand services for changes in a millisecond.


class Locality(NamedTuple):
    cloud: str = ""
    region: str = ""
    zone: str = ""


class EndpointPolicy(NamedTuple):
    address: str  # an IP address, or a DNS name
    port: int
    weight: int = 1
    metadata: FrozenDict = EMPTY
    health: str = UNKNOWN
    # What a DNS name resolves to (resolve.py): the addresses EDS sends for it.
    resolved: tuple[str, ...] = ()

    @property
    def addresses(self) -> tuple[str, ...]:
        """The IP addresses proxies get for this endpoint: its own, or what its name resolved to."""
        return (self.address,) if is_ip(self.address) else self.resolved


class BackendPolicy(NamedTuple):
    """One endpoint group as one backend service uses it."""

    group: str
    locality: Locality
    endpoints: tuple[EndpointPolicy, ...]
    # The backend's capacity scaler times the group's: 0 drains the backend.
    capacity: float = 1.0
    preference: str = "DEFAULT"  # or PREFERRED


class ServicePolicy(NamedTuple):
    name: str
    protocol: str = "HTTP"  # HTTP, HTTP2, GRPC, TCP
    locality_lb_policy: str = "ROUND_ROBIN"
    timeout_sec: float = 30.0
    session_affinity: str = "NONE"
    circuit_breakers: FrozenDict | None = None
    outlier_detection: FrozenDict | None = None
    consistent_hash: FrozenDict | None = None
    failover: FrozenDict | None = None
    backends: tuple[BackendPolicy, ...] = ()

    @property
    def fails_open(self) -> bool:
        """Every endpoint it serves from is UNHEALTHY: proxies get them as
        UNKNOWN (``service/health/failopen.py``)."""
        return fails_open((e.health for b in self.backends if b.capacity > 0 for e in b.endpoints),
                          drop_traffic_if_unhealthy=bool((self.failover or EMPTY).get("drop_traffic_if_unhealthy")))

    def with_endpoints(self, change: Callable[[str, EndpointPolicy], EndpointPolicy]) -> ServicePolicy:
        """This service with ``change(group, endpoint)`` for each endpoint;
        what it returns unchanged (the same object) stays the same object,
        up to the service itself."""
        backends = tuple(_backend_with(backend, change) for backend in self.backends)
        if all(map(operator.is_, backends, self.backends)):
            return self
        return self._replace(backends=backends)


def _backend_with(backend: BackendPolicy, change: Callable[[str, EndpointPolicy], EndpointPolicy]) -> BackendPolicy:
    endpoints = tuple(change(backend.group, endpoint) for endpoint in backend.endpoints)
    if all(map(operator.is_, endpoints, backend.endpoints)):
        return backend
    return backend._replace(endpoints=endpoints)


class RoutePolicy(NamedTuple):
    type: str  # http, grpc, tcp
    name: str
    hostnames: tuple[str, ...]
    rules: tuple[FrozenDict, ...]

    @property
    def kind(self) -> str:
        return f"{self.type}-routes"


@dataclass(frozen=True)
class MeshPolicy:
    """Everything the proxies of one mesh are configured from; services by
    name, routes by (type, name)."""

    tenant: str
    mesh: str
    revision: int
    interception_port: int = 15001
    services: tuple[ServicePolicy, ...] = ()
    routes: tuple[RoutePolicy, ...] = ()

    def with_endpoint_health(self, changes: Iterable[tuple[str, str, str, int, str]]) -> MeshPolicy:
        """This policy with endpoint health changed, as an "endpoint-health"
        change notice carries it: ``(service, group, address, port, health)``.
        Only the named services are new values (so translation rebuilds only
        their ClusterLoadAssignments); an endpoint or service the policy does
        not have is left alone (it went, and the next load will not have it)."""
        by_service: dict[str, dict[tuple[str, str, int], str]] = {}
        for service, group, address, port, health in changes:
            by_service.setdefault(service, {})[(group, address, port)] = health

        return self._with_services(lambda s: s.with_endpoints(_health_from(by_service[s.name]))
                                   if s.name in by_service else s)

    def hostnames(self) -> set[str]:
        """The endpoints' addresses that are host names, not IP addresses."""
        return {e.address for s in self.services for b in s.backends for e in b.endpoints if not is_ip(e.address)}

    def with_addresses(self, resolved: Mapping[str, tuple[str, ...]]) -> MeshPolicy:
        """This policy with each host-name endpoint's ``resolved`` addresses
        from ``resolved`` (name -> addresses; a name it lacks keeps its own)."""
        def change(group, endpoint):
            addresses = resolved.get(endpoint.address, endpoint.resolved)
            return endpoint if addresses == endpoint.resolved else endpoint._replace(resolved=addresses)

        if not resolved:
            return self
        return self._with_services(lambda s: s.with_endpoints(change))

    def _with_services(self, change: Callable[[ServicePolicy], ServicePolicy]) -> MeshPolicy:
        services = tuple(change(s) for s in self.services)
        if all(map(operator.is_, services, self.services)):
            return self
        return replace(self, services=services)


def _health_from(changes: dict[tuple[str, str, int], str]) -> Callable[[str, EndpointPolicy], EndpointPolicy]:
    def change(group: str, endpoint: EndpointPolicy) -> EndpointPolicy:
        health = changes.get((group, endpoint.address, endpoint.port), endpoint.health)
        return endpoint if health == endpoint.health else endpoint._replace(health=health)
    return change


def load_policy(tenant: str, mesh: str) -> MeshPolicy | None:
    """The stored policy of ``tenant``'s mesh ``mesh``, or None when there is
    no such mesh (any more)."""
    # Imported here so that translation, which needs only the values above,
    # runs without Django's app registry (the benchmark, pure tests).
    from service.mesh.models import Mesh

    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost:
            _one_consistent_read()
        found = Mesh.objects.filter(tenant__name=tenant, name=mesh).first()
        if found is None:
            return None
        return MeshPolicy(
            tenant=tenant,
            mesh=mesh,
            revision=found.revision,
            interception_port=found.interception_port,
            services=_services(found),
            routes=_routes(found),
        )


def _one_consistent_read():
    """Several queries, one state of the database: a write committing between
    them must not leave a route pointing at a service we did not read.
    (SQLite transactions see one state anyway.)"""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")


# Rows are read as values, not model instances, and JSON only where it is not
# empty: at a thousand services, decoding every endpoint's `{}` metadata and
# building model objects cost more than the queries.


def _services(mesh) -> tuple[ServicePolicy, ...]:
    from service.mesh.models import Backend, BackendService

    backends: dict[int, list[tuple]] = {}
    rows = Backend.objects.filter(backend_service__mesh=mesh).order_by("backend_service_id", "position")
    for service_id, *backend in rows.values_list(
            "backend_service_id", "endpoint_group_id", "endpoint_group__name", "endpoint_group__cloud",
            "endpoint_group__region", "endpoint_group__zone", "capacity_scaler", "endpoint_group__capacity_scaler",
            "preference"):
        backends.setdefault(service_id, []).append(backend)
    endpoints = _endpoints_by_group({backend[0] for group in backends.values() for backend in group})
    verdicts = _verdicts(mesh)
    services = BackendService.objects.filter(mesh=mesh).order_by("name").values_list(
        "pk", "name", "protocol", "locality_lb_policy", "timeout_sec", "session_affinity", "circuit_breakers",
        "outlier_detection", "consistent_hash", "failover")
    return tuple(
        ServicePolicy(name, protocol, lb_policy, timeout_sec, affinity, freeze(breakers), freeze(outliers),
                      freeze(hashing), freeze(failover),
                      backends=tuple(_backend(row, endpoints, verdicts.get(pk, {})) for row in backends.get(pk, ())))
        for pk, name, protocol, lb_policy, timeout_sec, affinity, breakers, outliers, hashing, failover in services
    )


def _backend(row: tuple, endpoints: dict[int, tuple[tuple[int, EndpointPolicy], ...]],
             verdicts: dict[int, str]) -> BackendPolicy:
    group_id, group, cloud, region, zone, backend_scaler, group_scaler, preference = row
    # The group's endpoints are shared by the services that use it; each
    # service sees them with its own health check's verdicts.
    in_service = tuple(endpoint if pk not in verdicts else endpoint._replace(health=verdicts[pk])
                       for pk, endpoint in endpoints.get(group_id, ()))
    return BackendPolicy(group, Locality(cloud, region, zone), in_service,
                         capacity=backend_scaler * group_scaler, preference=preference)


def _endpoints_by_group(group_ids: set[int]) -> dict[int, tuple[tuple[int, EndpointPolicy], ...]]:
    from service.mesh.models import Endpoint

    in_groups = Endpoint.objects.filter(group_id__in=group_ids)
    metadata = dict(in_groups.exclude(metadata={}).values_list("pk", "metadata"))
    found: dict[int, list[tuple[int, EndpointPolicy]]] = {}
    rows = in_groups.order_by("group_id", "address", "port").values_list("pk", "group_id", "address", "port", "weight")
    for pk, group_id, address, port, weight in rows:
        found.setdefault(group_id, []).append(
            (pk, EndpointPolicy(address, port, weight, freeze(metadata[pk]) if pk in metadata else EMPTY)))
    return {group_id: tuple(items) for group_id, items in found.items()}


def _verdicts(mesh) -> dict[int, dict[int, str]]:
    """Service id -> endpoint id -> health, for the verdicts other than
    UNKNOWN of the mesh's services' health checks, in one query. A verdict
    of an endpoint the service does not use (its check is shared) is read
    and never looked up."""
    from service.health.models import Verdict

    found: dict[int, dict[int, str]] = {}
    rows = Verdict.objects.filter(health_check__backend_services__mesh=mesh).exclude(health=UNKNOWN).values_list(
        "health_check__backend_services", "endpoint_id", "health")
    for service_id, endpoint_id, health in rows:
        found.setdefault(service_id, {})[endpoint_id] = health
    return found


def load_verdicts(tenant: str, mesh: str) -> list[tuple[str, str, str, int, str]]:
    """The stored verdicts of ``tenant``'s mesh ``mesh`` in the shape of an
    "endpoint-health" notice, ``(service, group, address, port, health)``, one
    per service and endpoint of its health check, in one query (a verdict of
    an endpoint the service does not use is read, and matches nothing in
    :meth:`MeshPolicy.with_endpoint_health`)."""
    from service.health.models import Verdict

    in_mesh = {"health_check__backend_services__mesh__tenant__name": tenant,
               "health_check__backend_services__mesh__name": mesh}
    return list(Verdict.objects.filter(**in_mesh).values_list(
        "health_check__backend_services__name", "endpoint__group__name", "endpoint__address", "endpoint__port",
        "health"))


def _routes(mesh) -> tuple[RoutePolicy, ...]:
    from service.mesh.models import Route

    rows = Route.objects.filter(meshes=mesh).order_by("type", "name").values_list("type", "name", "hostnames", "rules")
    return tuple(
        RoutePolicy(type=route_type, name=name, hostnames=tuple(hostnames or ()), rules=freeze(rules))
        for route_type, name, hostnames, rules in rows
    )
