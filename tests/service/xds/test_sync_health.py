"""PolicySync and "endpoint-health" notices, without a server or a database:
a health change is applied to the held Translation (nothing is re-read), only
EDS changes, and a refresh in flight never undoes newer health."""
import asyncio
import threading
from dataclasses import replace

from envoy.config.core.v3 import health_check_pb2
from envoy.config.endpoint.v3 import endpoint_pb2

from service.notices import ChangeNotice, InProcessBus
from service.xds.cache import CacheKey, SnapshotCache
from service.xds.policy import BackendPolicy, EndpointPolicy, Locality, MeshPolicy, ServicePolicy
from service.xds.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE
from service.xds.sync import Mark, PolicySync
from service.xds.translate import translate

KEY = CacheKey("acme", "m1", "aws", "us-east-1")


def policy(health="UNKNOWN"):
    """Two services; web's first endpoint has `health`."""
    def backend(group, first_health):
        return (BackendPolicy(group, Locality("aws", "us-east-1", "a"),
                              (EndpointPolicy("10.0.0.1", 80, health=first_health), EndpointPolicy("10.0.0.2", 80))),)
    return MeshPolicy("acme", "m1", 1, services=(ServicePolicy("api", backends=backend("g-api", "UNKNOWN")),
                                                  ServicePolicy("web", backends=backend("g-web", health))))


class Database:
    """What the refresh reads: a policy the test sets, and a gate that holds
    a refresh inside its read, as a slow database would."""

    def __init__(self):
        self.policy = policy()
        self.reads = 0
        self.reading = threading.Event()
        self.gate = threading.Event()
        self.gate.set()
        self.mark = Mark(1, None)  # what the catch-up reads
        self.verdicts = []  # the stored verdicts, as (service, group, address, port, health)
        self.verdict_reads = 0

    def marks(self, mesh_keys):
        return {key: self.mark for key in mesh_keys if key == ("acme", "m1")}

    def with_verdicts(self, translation):
        self.verdict_reads += 1
        updated = translation.policy.with_endpoint_health(self.verdicts)
        return None if updated is translation.policy else translate(updated, translation)

    def refresh(self, tenant, mesh, previous):
        read = self.policy if (tenant, mesh) == ("acme", "m1") else None
        self.reads += 1
        self.reading.set()
        assert self.gate.wait(10)
        return None if read is None else translate(read, previous)


class ThreadPool:
    """The ORM pool's interface, pure work on threads."""

    async def run(self, fn, *args):
        return await asyncio.to_thread(fn, *args)


def health_notice(*endpoints, mesh="m1"):
    return ChangeNotice("acme", mesh, 1, ("endpoint-health",), (("backend-services", "web"),), endpoints)


def sent_health(snapshot, service="web"):
    assignment = endpoint_pb2.ClusterLoadAssignment.FromString(snapshot.resources[ENDPOINT][service].body)
    return [health_check_pb2.HealthStatus.Name(e.health_status)
            for locality in assignment.endpoints for e in locality.lb_endpoints]


async def until(check, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not true in time"
        await asyncio.sleep(0.01)


def run_with_sync(scenario):
    """Run scenario(sync, db, bus) with a started sync whose KEY is watched and loaded."""
    async def main():
        db, bus, cache = Database(), InProcessBus(), SnapshotCache()
        sync = PolicySync(cache, ThreadPool(), refresh=db.refresh, marks=db.marks, verdicts=db.with_verdicts,
                          catch_up_every=3600)
        await sync.start(bus)
        watch = cache.watch(KEY, lambda: None)
        try:
            await until(lambda: cache.get(KEY) is not None)
            return await scenario(sync, db, bus, cache)
        finally:
            watch.close()
            await sync.stop()

    return asyncio.run(main())


def test_a_health_notice_is_applied_to_the_held_translation_without_reading_the_mesh():
    async def scenario(sync, db, bus, cache):
        before = cache.get(KEY)
        bus.publish(health_notice(("web", "g-web", "10.0.0.1", 80, "UNHEALTHY")))
        await until(lambda: cache.get(KEY) is not before)
        return before, cache.get(KEY), db.reads, sync

    before, after, reads, sync = run_with_sync(scenario)
    assert reads == 1 and sync.refreshes == 1 and sync.health_updates == 1  # the first load only
    assert sent_health(after) == ["UNHEALTHY", "UNKNOWN"]
    assert all(after.version(t) == before.version(t) for t in (CLUSTER, LISTENER, ROUTE))
    assert after.resources[ENDPOINT]["api"] is before.resources[ENDPOINT]["api"]


def test_a_health_notice_for_a_mesh_not_held_is_ignored():
    async def scenario(sync, db, bus, cache):
        bus.publish(health_notice(("web", "g-web", "10.0.0.1", 80, "UNHEALTHY"), mesh="m2"))
        bus.publish(health_notice(("web", "g-web", "10.0.0.2", 80, "HEALTHY")))  # one held, after it
        await until(lambda: sync.health_updates == 1)
        return cache.get(KEY), db.reads, sync.health_updates

    snapshot, reads, updates = run_with_sync(scenario)
    assert (reads, updates) == (1, 1)
    assert sent_health(snapshot) == ["UNKNOWN", "HEALTHY"]


def test_health_arriving_during_a_refresh_wins_over_the_older_verdicts_it_read():
    """The refresh read the verdicts before they changed and finishes after
    the notice arrived: the notice is applied after it, so the newer health stays."""
    async def scenario(sync, db, bus, cache):
        db.gate.clear()
        db.reading.clear()
        bus.publish(ChangeNotice("acme", "m1", 2, ("http-routes",)))  # a policy change: a refresh
        await asyncio.to_thread(db.reading.wait, 10)  # it has read web's first endpoint as UNKNOWN
        bus.publish(health_notice(("web", "g-web", "10.0.0.1", 80, "UNHEALTHY")))
        await asyncio.sleep(0.05)
        db.gate.set()
        await until(lambda: sync.health_updates == 1 and sync.refreshes == 2)
        await asyncio.sleep(0.05)
        return cache.get(KEY)

    assert sent_health(run_with_sync(scenario)) == ["UNHEALTHY", "UNKNOWN"]


def test_health_that_arrived_before_a_refresh_started_is_what_that_refresh_reads():
    """A notice is published after its verdict commits, so a refresh that
    starts after it reads that verdict or a newer one: the newer one stays."""
    async def scenario(sync, db, bus, cache):
        db.gate.clear()
        db.reading.clear()
        bus.publish(ChangeNotice("acme", "m1", 2, ("http-routes",)))
        await asyncio.to_thread(db.reading.wait, 10)
        bus.publish(health_notice(("web", "g-web", "10.0.0.1", 80, "UNHEALTHY")))
        bus.publish(ChangeNotice("acme", "m1", 3, ("http-routes",)))  # another refresh, after the notice
        await asyncio.sleep(0.05)
        db.policy = replace(policy(health="HEALTHY"), revision=3)  # the verdict changed again meanwhile
        db.gate.set()
        await until(lambda: sync.refreshes == 3)
        await asyncio.sleep(0.05)
        return cache.get(KEY), sync.health_updates

    snapshot, updates = run_with_sync(scenario)
    assert sent_health(snapshot) == ["HEALTHY", "UNKNOWN"] and updates == 0


def test_the_catch_up_applies_verdicts_that_moved_without_a_notice():
    """A verdict makes no revision: a health notice lost (Redis frozen) is made
    up by the catch-up's look at the verdicts' mark, which reads the verdicts
    again (not the mesh) and re-sends EDS only; nothing moved, nothing is read."""
    async def scenario(sync, db, bus, cache):
        await sync.catch_up()  # the first look at the mesh refreshes it
        await until(lambda: sync.refreshes == 2)
        await sync.catch_up()
        await asyncio.sleep(0.05)
        assert (sync.refreshes, db.verdict_reads) == (2, 0)  # nothing moved
        before = cache.get(KEY)
        db.verdicts = [("web", "g-web", "10.0.0.1", 80, "UNHEALTHY")]  # recorded, its notice lost
        db.mark = Mark(1, 1765000000.25)
        await sync.catch_up()
        await until(lambda: cache.get(KEY) is not before)
        after = cache.get(KEY)
        await sync.catch_up()  # nothing moved since
        await asyncio.sleep(0.05)
        assert (sync.refreshes, db.verdict_reads, sync.verdict_rereads) == (2, 1, 1)
        db.mark = Mark(2, 1765000000.25)  # a policy change whose notice was lost: the mesh is read
        await sync.catch_up()
        await until(lambda: sync.refreshes == 3)
        return before, after

    before, after = run_with_sync(scenario)
    assert sent_health(after) == ["UNHEALTHY", "UNKNOWN"]
    assert all(after.version(t) == before.version(t) for t in (CLUSTER, LISTENER, ROUTE))
    assert after.version(ENDPOINT) != before.version(ENDPOINT)
