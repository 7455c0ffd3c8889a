"""The recorder: changes of many streams become a few batched writes; a record
the database refuses is dropped without holding back the others; the sweep."""
import asyncio
import contextlib
from dataclasses import replace
from datetime import timedelta

import pytest
from django.utils import timezone

from service.mesh.models import Mesh
from service.xds import records
from service.xds.models import Proxy, ProxyTypeStatus
from service.xds.orm import OrmPool
from service.xds.protocol import Ack, Outgoing
from service.xds.records import Recorder, connected_proxies, forget_disconnected, mark_stale_disconnected
from service.xds.snapshot import CLUSTER
from tests.service.xds.test_api import record


@pytest.mark.django_db(transaction=True)
def test_a_thousand_changes_are_written_in_a_few_batches(api):
    assert api.post("/api/v1/meshes", {"name": "m1"}, format="json").status_code == 201
    records = [record(api.tenant, "m1", f"n{i}") for i in range(300)]

    async def scenario():
        orm = OrmPool(2)
        recorder = Recorder(orm, "r1")
        await recorder.start()
        for proxy in records:
            recorder.changed(proxy)
        for proxy in records:
            proxy.sent(Outgoing(CLUSTER, "v1", "1", b"", 1))
            recorder.changed(proxy)
            proxy.answered(Ack(CLUSTER, "v1", "1"))
            recorder.changed(proxy)
        await recorder.flush()
        await recorder.stop()
        orm.close()
        return recorder.batches

    batches = asyncio.run(scenario())
    assert 1 <= batches <= 3
    assert Proxy.objects.filter(tenant=api.tenant, disconnected_at__isnull=True).count() == 300
    assert ProxyTypeStatus.objects.filter(version_acked="v1", version_sent="v1").count() == 300


@pytest.mark.django_db(transaction=True)
def test_a_restarted_replica_marks_its_previous_streams_disconnected(api):
    assert api.post("/api/v1/meshes", {"name": "m1"}, format="json").status_code == 201
    proxy = record(api.tenant, "m1", "n1")

    async def scenario():
        orm = OrmPool(1)
        first = Recorder(orm, "r1")
        await first.start()
        first.changed(proxy)
        await first.flush()
        await first.stop()  # stopped without its streams closing, as a crash would
        again = Recorder(orm, "r1")
        await again.start()
        await again.stop()
        orm.close()

    asyncio.run(scenario())
    assert Proxy.objects.get(name="n1").disconnected_at is not None


def run_recorder(scenario, **options):
    """Run ``scenario(recorder, orm)`` against a started recorder, then stop it; the recorder."""
    async def main():
        orm = OrmPool(2)
        recorder = Recorder(orm, "r1", **options)
        await recorder.start()
        try:
            await scenario(recorder, orm)
            await recorder.flush()
        finally:
            await recorder.stop()
            orm.close()
        return recorder

    return asyncio.run(main())


@pytest.mark.django_db(transaction=True)
def test_records_the_database_refuses_are_dropped_and_logged_once_and_the_others_written(api, caplog):
    assert api.post("/api/v1/meshes", {"name": "m1"}, format="json").status_code == 201
    good = [record(api.tenant, "m1", f"n{i}") for i in range(200)]
    too_long = record(api.tenant, "m1", "x" * 300)  # past the connect check, as no proxy can be
    mesh_gone = record(api.tenant, "m1", "orphan")
    mesh_gone.identity = replace(mesh_gone.identity, credential=replace(mesh_gone.identity.credential, mesh_id=10**9))
    bad = [too_long, mesh_gone]

    async def scenario(recorder, orm):
        for proxy in good[:100] + bad + good[100:]:
            recorder.changed(proxy)
        await recorder.flush()
        for proxy in good + bad:  # dropped records are no longer written, the others go on
            proxy.sent(Outgoing(CLUSTER, "v1", "1", b"", 1))
            recorder.changed(proxy)
            proxy.closed()
            recorder.changed(proxy)

    recorder = run_recorder(scenario)
    assert recorder.dropped == 2
    assert Proxy.objects.filter(tenant=api.tenant, disconnected_at__isnull=False).count() == 200
    assert ProxyTypeStatus.objects.filter(version_sent="v1").count() == 200
    # Splitting found the two in a few transactions, not one per record.
    assert recorder.batches <= 20
    dropped = [r.getMessage() for r in caplog.records if "dropped the record" in r.getMessage()]
    assert len(dropped) == 2 and all(len(line) < 700 for line in dropped)


def seen(tenant, mesh, name, replica, last_seen_at, disconnected_at=None):
    return Proxy.objects.create(tenant=tenant, mesh=mesh, name=name, node_id=name, kind="envoy", replica=replica,
                                stream=name, connected_at=last_seen_at, last_seen_at=last_seen_at,
                                disconnected_at=disconnected_at)


@pytest.mark.django_db(transaction=True)
def test_the_sweep_marks_a_dead_replicas_proxies_disconnected_and_forgets_old_ones(api):
    assert api.post("/api/v1/meshes", {"name": "m1"}, format="json").status_code == 201
    mesh = Mesh.objects.get(tenant=api.tenant, name="m1")
    now = timezone.now()
    seen(api.tenant, mesh, "live", "other", now)
    dead = seen(api.tenant, mesh, "dead", "crashed", now - timedelta(minutes=5))
    seen(api.tenant, mesh, "recent", "other", now - timedelta(hours=1), disconnected_at=now - timedelta(hours=1))
    old = seen(api.tenant, mesh, "old", "other", now - timedelta(days=2), disconnected_at=now - timedelta(days=2))
    ProxyTypeStatus.objects.create(proxy=old, type_url=CLUSTER)
    assert api.get("/api/v1/tenant").json()["usage"]["proxies"] == 2

    run_recorder(lambda recorder, orm: asyncio.sleep(0.3), sweep_every=0.1, stale_after=60)

    assert Proxy.objects.get(name="dead").disconnected_at == dead.last_seen_at
    assert Proxy.objects.get(name="live").disconnected_at is None
    assert sorted(Proxy.objects.values_list("name", flat=True)) == ["dead", "live", "recent"]
    assert not ProxyTypeStatus.objects.exists()
    assert api.get("/api/v1/tenant").json()["usage"]["proxies"] == 1
    assert connected_proxies(api.tenant.pk) == 1
    assert mark_stale_disconnected(timezone.now()) == 1  # "live" alone: "dead" is marked once
    assert forget_disconnected(timezone.now() - timedelta(hours=2)) == 0


@pytest.mark.django_db(transaction=True)
def test_a_sweep_works_in_bounded_batches(api):
    assert api.post("/api/v1/meshes", {"name": "m1"}, format="json").status_code == 201
    mesh = Mesh.objects.get(tenant=api.tenant, name="m1")
    long_ago = timezone.now() - timedelta(days=3)
    Proxy.objects.bulk_create([Proxy(tenant=api.tenant, mesh=mesh, name=f"n{i}", node_id=f"n{i}", kind="envoy",
                                     replica="r", stream=f"s{i}", connected_at=long_ago, last_seen_at=long_ago,
                                     disconnected_at=long_ago) for i in range(25)])
    with override_batches(10, 2):
        assert forget_disconnected(timezone.now()) == 20
        assert forget_disconnected(timezone.now()) == 5
    assert not Proxy.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_heartbeat_reconnects_its_live_proxies_that_a_sweep_took_for_dead(api):
    assert api.post("/api/v1/meshes", {"name": "m1"}, format="json").status_code == 201
    proxy = record(api.tenant, "m1", "n1")

    async def scenario(recorder, orm):
        recorder.changed(proxy)
        await recorder.flush()
        await orm.run(mark_stale_disconnected, timezone.now() + timedelta(seconds=1))
        assert await orm.run(connected_proxies, api.tenant.pk) == 0
        await asyncio.sleep(0.3)

    run_recorder(scenario, heartbeat=0.1)
    assert connected_proxies(api.tenant.pk) == 1


@contextlib.contextmanager
def override_batches(batch, batches):
    saved = records.SWEEP_BATCH, records.SWEEP_BATCHES
    records.SWEEP_BATCH, records.SWEEP_BATCHES = batch, batches
    try:
        yield
    finally:
        records.SWEEP_BATCH, records.SWEEP_BATCHES = saved
