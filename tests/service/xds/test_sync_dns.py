"""PolicySync looks host names up again: a held mesh whose names resolve
differently re-sends only the ClusterLoadAssignments concerned (pure: the
resolution is the test's)."""
import asyncio

from envoy.config.endpoint.v3 import endpoint_pb2

from service.notices import InProcessBus
from service.xds.cache import CacheKey, SnapshotCache
from service.xds.policy import BackendPolicy, EndpointPolicy, Locality, MeshPolicy, ServicePolicy
from service.xds.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE
from service.xds.sync import PolicySync
from service.xds.translate import translate
from tests.service.xds.test_sync_health import ThreadPool, until

KEY = CacheKey("acme", "m1", "aws", "us-east-1")
POLICY = MeshPolicy("acme", "m1", 1, services=(
    ServicePolicy("api", backends=(BackendPolicy("g1", Locality("aws", "us-east-1"), (EndpointPolicy("10.0.0.1", 80),)),)),
    ServicePolicy("partner", backends=(BackendPolicy("g2", Locality("aws", "us-east-1"),
                                                     (EndpointPolicy("api.partner.example", 443),)),))))


class Dns:
    def __init__(self):
        self.answers = {"api.partner.example": ("192.0.2.1",)}
        self.looks = 0

    def refresh(self, tenant, mesh, previous):
        return translate(POLICY.with_addresses(self.answers), previous)

    def readdress(self, translation):
        self.looks += 1
        policy = translation.policy.with_addresses(self.answers)
        return None if policy is translation.policy else translate(policy, translation)


def addresses(snapshot, service):
    assignment = endpoint_pb2.ClusterLoadAssignment.FromString(snapshot.resources[ENDPOINT][service].body)
    return [e.endpoint.address.socket_address.address for loc in assignment.endpoints for e in loc.lb_endpoints]


def test_a_name_that_resolves_anew_re_sends_its_load_assignment_only():
    async def main():
        dns, cache = Dns(), SnapshotCache()
        sync = PolicySync(cache, ThreadPool(), refresh=dns.refresh, readdress=dns.readdress, readdress_every=0.05,
                          catch_up_every=3600)
        await sync.start(InProcessBus())
        watch = cache.watch(KEY, lambda: None)
        try:
            await until(lambda: cache.get(KEY) is not None)
            first = cache.get(KEY)
            await until(lambda: dns.looks >= 2)
            assert cache.get(KEY) is first  # the same answers: nothing set
            dns.answers = {"api.partner.example": ("192.0.2.7", "192.0.2.8")}
            await until(lambda: cache.get(KEY) is not first)
            return first, cache.get(KEY), sync.refreshes
        finally:
            watch.close()
            await sync.stop()

    first, after, refreshes = asyncio.run(main())
    assert refreshes == 1  # no load: the held translation was re-resolved
    assert addresses(first, "partner") == ["192.0.2.1"]
    assert addresses(after, "partner") == ["192.0.2.7", "192.0.2.8"]
    assert after.resources[ENDPOINT]["api"] is first.resources[ENDPOINT]["api"]
    assert all(after.version(t) == first.version(t) for t in (CLUSTER, LISTENER, ROUTE))
