"""What one proxy's load reports may make the shared load store keep: samples
per report, name lengths, and samples per mesh (the store is one Redis for
every tenant)."""
import time
import uuid

import pytest
from django.conf import settings
from envoy.service.load_stats.v3 import lrs_pb2, lrs_pb2_grpc

from service.xds import load
from service.xds.load import LoadSample, LoadStoreFull, Locality, RedisLoadStore, samples_of
from tests.service.xds.conftest import eventually, node

pytestmark = pytest.mark.django_db(transaction=True)


def report(clusters: int, localities: int, name_length: int = 8, prefix: str = "c"):
    request = lrs_pb2.LoadStatsRequest()
    for c in range(clusters):
        stats = request.cluster_stats.add(cluster_name=f"{prefix}{c}".ljust(name_length, "x"))
        stats.load_report_interval.seconds = 10
        for z in range(localities):
            upstream = stats.upstream_locality_stats.add(total_issued_requests=10)
            upstream.locality.region, upstream.locality.zone = "r", f"z{z}"
    return request


def test_a_report_yields_at_most_its_bound_of_samples_and_no_overlong_names():
    assert len(samples_of(report(50, 50), "n1", time.time())) == load.MAX_SAMPLES_PER_REPORT
    assert samples_of(report(3, 1, name_length=load.MAX_NAME_LENGTH + 1), "n1", time.time()) == []
    overlong_zone = report(1, 1)
    overlong_zone.cluster_stats[0].upstream_locality_stats[0].locality.zone = "z" * (load.MAX_NAME_LENGTH + 1)
    assert samples_of(overlong_zone, "n1", time.time()) == []


@pytest.fixture
def store():
    store = RedisLoadStore(settings.REDIS_URL, timeout=1.0, prefix=f"interlock-test:load:{uuid.uuid4().hex}")
    yield store
    store.close()


def sample(cluster: str, at: float) -> LoadSample:
    return LoadSample(cluster, Locality("r", "z"), "n1", rate=1.0, errors=0.0, in_progress=0, at=at)


def test_a_mesh_holds_at_most_its_bound_of_fresh_samples_and_stale_ones_make_room(store, monkeypatch):
    monkeypatch.setattr(load, "MAX_SAMPLES_PER_MESH", 20)
    now = time.time()
    store.record("acme", "m1", [sample(f"old{i}", now - 2 * store.ttl) for i in range(20)])
    store.record("acme", "m1", [sample(f"new{i}", now) for i in range(20)])  # the stale twenty made room
    with pytest.raises(LoadStoreFull):
        store.record("acme", "m1", [sample("one-more", now)])
    store.record("acme", "m2", [sample("elsewhere", now)])  # another mesh is not held back
    assert sum(c.proxies for c in store.read("acme", "m1")) == 20


@pytest.fixture
def empty_mesh_load():
    """acme/m1's samples in the replica's store, dropped before and after (they outlive a test by a minute)."""
    import redis

    key = f"{load.get_load_store().prefix}:acme:m1"
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(key)
    yield
    client.delete(key)
    client.close()


def test_a_proxy_flooding_distinct_clusters_is_held_to_the_bound_and_its_stream_goes_on(
        api, token, replica, channels, monkeypatch, empty_mesh_load):
    monkeypatch.setattr(load, "MAX_SAMPLES_PER_MESH", 100)
    reports = [report(50, 1, prefix=f"r{n}-") for n in range(10)]
    reports[0].node.CopyFrom(node())
    replies = lrs_pb2_grpc.LoadReportingServiceStub(channels(replica)).StreamLoadStats(
        iter(reports), metadata=(("authorization", f"Bearer {token}"),))
    next(replies)
    eventually(lambda: replica.server.callbacks.counts["load_reports_dropped"] >= 8)
    assert sum(c.proxies for c in load.read_load("acme", "m1")) == 100
