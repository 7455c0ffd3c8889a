"""Load reports (LRS) from proxies, kept for the autoscaler.

Each report a proxy sends says, per cluster and upstream locality, how many
requests it issued over an interval. The LRS handler turns it into
:class:`LoadSample` values (one per cluster, locality and proxy) and stores
them with a time-to-live; :func:`read_load` sums the fresh ones per cluster
and locality, which is what the autoscaler compares with capacity.

Production keeps samples in Redis (one hash per tenant and mesh, shared by all
replicas and read by the workers); ``interlock dev`` keeps them in memory.
"""
from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Protocol

SAMPLE_TTL = 60.0  # seconds a sample counts; a few report intervals
# What a proxy may make the store keep (the store is shared by every tenant):
# samples of one report, the length of the names in them, and the samples one
# mesh holds. A mesh of 5,000 proxies reporting a few clusters each fits.
MAX_SAMPLES_PER_REPORT = 1_000
MAX_NAME_LENGTH = 255  # a cluster (service) name, a locality's region, zone or sub-zone
MAX_SAMPLES_PER_MESH = 50_000


class LoadStoreFull(Exception):
    """The mesh holds MAX_SAMPLES_PER_MESH fresh samples: a report is dropped."""


@dataclass(frozen=True)
class Locality:
    region: str = ""
    zone: str = ""
    sub_zone: str = ""


@dataclass(frozen=True)
class LoadSample:
    cluster: str
    locality: Locality
    node: str
    rate: float  # requests per second issued to that locality
    errors: float  # failed requests per second
    in_progress: int
    at: float  # unix time the sample was received


@dataclass(frozen=True)
class ClusterLoad:
    """The load of one cluster in one locality, summed over the proxies reporting it."""

    cluster: str
    locality: Locality
    rate: float
    errors: float
    in_progress: int
    proxies: int


def samples_of(request, node: str, now: float) -> list[LoadSample]:
    """The samples in one LoadStatsRequest."""
    samples = []
    for stats in request.cluster_stats:
        interval = stats.load_report_interval.ToTimedelta().total_seconds()
        if interval <= 0 or len(stats.cluster_name) > MAX_NAME_LENGTH:
            continue  # a report over no time says nothing about a rate; no service has such a name
        for upstream in stats.upstream_locality_stats:
            if len(samples) == MAX_SAMPLES_PER_REPORT:
                return samples
            place = upstream.locality
            if max(len(place.region), len(place.zone), len(place.sub_zone)) > MAX_NAME_LENGTH:
                continue
            issued = max(upstream.total_issued_requests,
                         upstream.total_successful_requests + upstream.total_error_requests)
            samples.append(LoadSample(
                cluster=stats.cluster_name,
                locality=Locality(upstream.locality.region, upstream.locality.zone, upstream.locality.sub_zone),
                node=node,
                rate=issued / interval,
                errors=upstream.total_error_requests / interval,
                in_progress=upstream.total_requests_in_progress,
                at=now,
            ))
    return samples


def summed(samples, now: float, ttl: float = SAMPLE_TTL) -> list[ClusterLoad]:
    """Fresh samples summed per cluster and locality (a proxy counts once: its latest)."""
    totals: dict[tuple, list] = defaultdict(lambda: [0.0, 0.0, 0, 0])
    for sample in samples:
        if now - sample.at > ttl:
            continue
        total = totals[(sample.cluster, sample.locality)]
        total[0] += sample.rate
        total[1] += sample.errors
        total[2] += sample.in_progress
        total[3] += 1
    return [ClusterLoad(cluster, locality, *total) for (cluster, locality), total in sorted(
        totals.items(), key=lambda item: (item[0][0], item[0][1].region, item[0][1].zone, item[0][1].sub_zone))]


class LoadStore(Protocol):
    def record(self, tenant: str, mesh: str, samples: list[LoadSample]) -> None: ...

    def read(self, tenant: str, mesh: str) -> list[ClusterLoad]: ...


def _field(sample: LoadSample) -> str:
    # One entry per proxy, cluster and locality: a newer report replaces it.
    return json.dumps([sample.cluster, sample.locality.region, sample.locality.zone, sample.locality.sub_zone,
                       sample.node])


def _sample(field: str, value: str) -> LoadSample:
    cluster, region, zone, sub_zone, node = json.loads(field)
    data = json.loads(value)
    return LoadSample(cluster, Locality(region, zone, sub_zone), node, data["rate"], data["errors"],
                      data["in_progress"], data["at"])


class RedisLoadStore:
    def __init__(self, url: str, timeout: float, ttl: float = SAMPLE_TTL, prefix: str = "interlock:load"):
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self.ttl = ttl
        self.prefix = prefix

    def _key(self, tenant: str, mesh: str) -> str:
        return f"{self.prefix}:{tenant}:{mesh}"

    def record(self, tenant: str, mesh: str, samples: list[LoadSample]) -> None:
        if not samples:
            return
        key = self._key(tenant, mesh)
        if self._redis.hlen(key) >= MAX_SAMPLES_PER_MESH:
            self._fresh(key)
            if self._redis.hlen(key) >= MAX_SAMPLES_PER_MESH:
                raise LoadStoreFull(f"mesh {tenant}/{mesh} holds {MAX_SAMPLES_PER_MESH} load samples")
        values = {_field(s): json.dumps({"rate": s.rate, "errors": s.errors, "in_progress": s.in_progress,
                                         "at": s.at}) for s in samples}
        with self._redis.pipeline() as pipe:
            pipe.hset(key, mapping=values)
            pipe.expire(key, int(self.ttl) + 1)  # a mesh nobody reports for goes away whole
            pipe.execute()

    def read(self, tenant: str, mesh: str) -> list[ClusterLoad]:
        return summed(self._fresh(self._key(tenant, mesh)), time.time(), self.ttl)

    def _fresh(self, key: str) -> list[LoadSample]:
        """The key's samples, the stale ones deleted."""
        now = time.time()
        samples = [_sample(f.decode(), v.decode()) for f, v in self._redis.hgetall(key).items()]
        stale = [_field(s) for s in samples if now - s.at > self.ttl]
        if stale:
            self._redis.hdel(key, *stale)
        return [s for s in samples if now - s.at <= self.ttl]

    def close(self) -> None:
        self._redis.close()


class MemoryLoadStore:
    """For ``interlock dev``: the same semantics in this process."""

    def __init__(self, ttl: float = SAMPLE_TTL):
        self.ttl = ttl
        self._lock = threading.Lock()
        self._samples: dict[tuple[str, str], dict[str, LoadSample]] = defaultdict(dict)

    def record(self, tenant: str, mesh: str, samples: list[LoadSample]) -> None:
        with self._lock:
            kept = self._samples[(tenant, mesh)]
            if len(kept) >= MAX_SAMPLES_PER_MESH and len(self._fresh(kept)) >= MAX_SAMPLES_PER_MESH:
                raise LoadStoreFull(f"mesh {tenant}/{mesh} holds {MAX_SAMPLES_PER_MESH} load samples")
            kept.update((_field(s), s) for s in samples)

    def read(self, tenant: str, mesh: str) -> list[ClusterLoad]:
        with self._lock:
            return summed(self._fresh(self._samples[(tenant, mesh)]), time.time(), self.ttl)

    def _fresh(self, kept: dict[str, LoadSample]) -> list[LoadSample]:
        """The samples kept, the stale ones deleted (call under the lock)."""
        now = time.time()
        for field in [f for f, s in kept.items() if now - s.at > self.ttl]:
            del kept[field]
        return list(kept.values())

    def close(self) -> None:
        pass


_store: LoadStore | None = None
_store_lock = threading.Lock()


def get_load_store() -> LoadStore:
    """The process's store: Redis when ``REDIS_URL`` is set, else in memory."""
    global _store
    from django.conf import settings

    with _store_lock:
        if _store is None:
            if settings.REDIS_URL:
                _store = RedisLoadStore(settings.REDIS_URL, settings.REDIS_TIMEOUT)
            else:
                _store = MemoryLoadStore()
        return _store


def read_load(tenant: str, mesh: str) -> list[ClusterLoad]:
    """What the autoscaler reads: the mesh's current load per cluster and locality."""
    return get_load_store().read(tenant, mesh)
