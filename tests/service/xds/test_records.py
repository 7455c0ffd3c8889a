"""The recorder: changes of many streams become a few batched writes."""
import asyncio

import pytest

from service.xds.models import Proxy, ProxyTypeStatus
from service.xds.orm import OrmPool
from service.xds.protocol import Ack, Outgoing
from service.xds.records import Recorder
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
