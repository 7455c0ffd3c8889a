"""The health workers as an operator runs them: `interlock worker --region R`
and `interlock beat` subprocesses on real Redis (the broker, the beat lock and
the notice bus) and Postgres, probing loopback TCP servers."""
import datetime
import json
import os
import socketserver
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
from django.utils import timezone

from service.health.models import Health, RegionProbe, Verdict
from service.mesh.models import Endpoint, HealthCheck
from service.notices import get_bus
from tests.service.health.support import checked_service
from tests.workers.processes import Interlock, Process, eventually, send_round
from workers.celery import ROUNDS_QUEUE
from workers.tasks import send_probe_batch

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]


class TcpServer:
    """A loopback TCP server that accepts and closes connections, in a thread."""

    def __init__(self):
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server():
    server = TcpServer()
    yield server
    server.stop()


@pytest.fixture
def notices():
    """The endpoint-health notices published while the test runs."""
    received = []
    with get_bus().subscribe(lambda notice: "endpoint-health" in notice.kinds and received.append(notice)):
        yield received


def probed(check, endpoint, region: str, round_at) -> bool:
    return RegionProbe.objects.filter(health_check=check, endpoint=endpoint, region=region,
                                      probed_at__gte=round_at).exists()


def verdict_of(check, endpoint) -> str:
    row = Verdict.objects.filter(health_check=check, endpoint=endpoint).first()
    return row.health if row else Health.UNKNOWN


def web_service(api, tenant, *servers, regions=("r1",)):
    checked_service(api, [("127.0.0.1", s.port) for s in servers], port=servers[0].port, regions=regions,
                    thresholds=(2, 2))
    check = HealthCheck.objects.get(tenant=tenant, name="web-check")
    return check, list(Endpoint.objects.filter(tenant=tenant).order_by("port"))


def test_a_worker_finds_an_endpoint_healthy_then_unhealthy_and_says_so(api, tenant, interlock, server, notices):
    check, (endpoint,) = web_service(api, tenant, server)
    worker = interlock.worker("r1")
    send_round(check, "r1", [endpoint])
    eventually(lambda: verdict_of(check, endpoint) == Health.HEALTHY, "HEALTHY after one success", worker)
    server.stop()
    first_failure = send_round(check, "r1", [endpoint])
    eventually(lambda: probed(check, endpoint, "r1", first_failure), "the first failure recorded", worker)
    assert verdict_of(check, endpoint) == Health.HEALTHY  # one failure of unhealthy_threshold=2
    send_round(check, "r1", [endpoint])
    eventually(lambda: verdict_of(check, endpoint) == Health.UNHEALTHY, "UNHEALTHY after two failures", worker)
    probe = RegionProbe.objects.get(health_check=check, endpoint=endpoint, region="r1")
    assert probe.failures == 2 and probe.error and probe.address == f"127.0.0.1:{server.port}"
    expected = [(("web", "web-group", "127.0.0.1", server.port, health),) for health in ("HEALTHY", "UNHEALTHY")]
    eventually(lambda: [n.endpoints for n in notices] == expected, "a notice of each change")
    assert {(n.mesh, n.resources) for n in notices} == {("m1", (("backend-services", "web"),))}


def test_a_duplicated_task_and_an_expired_one_change_nothing(api, tenant, interlock, server):
    # Two endpoints on the check's port: one answers, nothing listens at the other.
    checked_service(api, [("127.0.0.1", server.port), ("127.0.0.2", server.port)], port=server.port,
                    regions=("r1",), thresholds=(2, 2))
    check = HealthCheck.objects.get(tenant=tenant, name="web-check")
    answering, failing = Endpoint.objects.filter(tenant=tenant).order_by("address")
    worker = interlock.worker("r1")
    now = timezone.now()
    send_round(check, "r1", [failing], now)
    send_round(check, "r1", [failing], now)  # the same task again, as a redelivery would
    # A later round's task that waited past its expiry (its check's next round) is dropped, not probed.
    late = now + datetime.timedelta(seconds=0.5)
    send_probe_batch(check.pk, "r1", [failing.pk], late, timezone.now() - datetime.timedelta(seconds=1))
    # One worker process takes its tasks in order: once this one is in, the two before it are.
    send_round(check, "r1", [answering], now)
    eventually(lambda: probed(check, answering, "r1", now), "the batch sent after the duplicate", worker)
    assert "Discarding revoked task: workers.tasks.probe_batch[" in worker.text()  # how Celery drops an expired one
    probe = RegionProbe.objects.get(health_check=check, endpoint=failing, region="r1")
    assert probe.failures == 1  # not 2 nor 3: neither the duplicate nor the expired task counted a failure
    assert probe.probed_at == now
    assert verdict_of(check, failing) == Health.UNKNOWN  # and unhealthy_threshold=2 was not reached
    send_round(check, "r1", [failing])
    eventually(lambda: verdict_of(check, failing) == Health.UNHEALTHY, "the next round's failure counted", worker)


def test_two_beats_schedule_the_rounds_once(api, tenant, interlock, broker, server):
    check, (endpoint,) = web_service(api, tenant, server)
    first = interlock("beat", name="beat-1")
    eventually(lambda: broker.llen(ROUNDS_QUEUE) > 0, "the first beat's ticks", first)
    second = interlock("beat", name="beat-2")
    time.sleep(2)  # the second is up and standing by
    start, window = broker.llen(ROUNDS_QUEUE), 4
    time.sleep(window)
    ticks = broker.llen(ROUNDS_QUEUE) - start
    # One beat ticks once a second; two would tick twice as often.
    assert window - 2 <= ticks <= window + 1, f"{ticks} ticks in {window} s: the second beat did not stand by"
    # The holder stops; the standby takes over (it released the lock as it stopped).
    first.stop()
    start = broker.llen(ROUNDS_QUEUE)
    eventually(lambda: broker.llen(ROUNDS_QUEUE) >= start + 2, "the second beat taking over", second)

    # A worker drains the ticks: each round of the check is sent once, one a second.
    broker.delete(ROUNDS_QUEUE)
    worker = interlock.worker("r1")
    eventually(lambda: verdict_of(check, endpoint) == Health.HEALTHY, "the beat's rounds probed", worker, second)
    before = worker.text().count("workers.tasks.probe_batch[")
    time.sleep(window)
    rounds = worker.text().count("workers.tasks.probe_batch[") - before
    # A line when a batch is received and one when it is done: one round a second, not two.
    assert 2 <= rounds <= 2 * (window + 1), rounds


def test_a_stopped_region_changes_no_verdict_of_the_others(api, tenant, interlock, server, notices):
    check, (endpoint,) = web_service(api, tenant, server, regions=("r1", "r2"))
    r1, r2 = interlock.worker("r1"), interlock.worker("r2")
    now = send_round(check, "r1", [endpoint])
    send_round(check, "r2", [endpoint], now)
    eventually(lambda: probed(check, endpoint, "r1", now) and probed(check, endpoint, "r2", now),
               "both regions probed", r1, r2)
    assert verdict_of(check, endpoint) == Health.HEALTHY
    r2.stop()
    # Rounds go on past the point where r2's last result is stale (3 intervals + the timeout).
    stale_at = time.monotonic() + 3 * check.check_interval_sec + check.timeout_sec + 1
    while time.monotonic() < stale_at:
        now = send_round(check, "r1", [endpoint])
        send_round(check, "r2", [endpoint], now)  # nobody takes these
        eventually(lambda: probed(check, endpoint, "r1", now), "r1's round", r1)
        assert verdict_of(check, endpoint) == Health.HEALTHY
        time.sleep(0.5)
    assert len(notices) == 1  # HEALTHY, once
    # The stale region holds nothing either: r1 alone now decides.
    server.stop()
    for _ in range(2):
        now = send_round(check, "r1", [endpoint])
        eventually(lambda: probed(check, endpoint, "r1", now), "r1's round", r1)
    assert verdict_of(check, endpoint) == Health.UNHEALTHY


def test_interlock_beat_needs_redis_for_its_lock(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    result = subprocess.run([sys.executable, "-m", "service.cli", "beat"], env={**env, "PYTHONPATH": str(ROOT)},
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert '"code": "no_redis"' in result.stderr and "REDIS_URL" in result.stderr


@pytest.mark.django_db(transaction=False)
def test_interlock_dev_probes_with_nothing_else_started(tmp_path, server):
    """`interlock dev` alone: its in-process worker and beat find a loopback endpoint healthy."""
    from tests.service.test_cli import free_port

    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "NOTICE_BUS")}
    env.update(INTERLOCK_STATE_DIR=str(state), PYTHONPATH=str(ROOT))
    port = free_port()
    dev = Process(["dev", "--port", str(port), "--xds-port", str(free_port())], env, tmp_path / "dev.log")
    try:
        dev.wait_for_line("Interlock dev control plane")
        database = f"sqlite:///{state / 'interlock-dev.sqlite3'}"
        created = subprocess.run([sys.executable, "-m", "service.cli", "tenant", "create", "t1"], cwd=ROOT,
                                 env={**env, "DATABASE_URL": database}, capture_output=True, text=True, timeout=60)
        key = json.loads(created.stdout)["api_key"]
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        for collection, body in [
            ("meshes", {"name": "m1"}),
            ("health-checks", {"name": "c", "check_interval_sec": 1, "timeout_sec": 1,
                               "tcp_health_check": {"port": server.port}}),
            ("endpoint-groups", {"name": "g", "endpoints": [{"address": "127.0.0.1", "port": server.port}]}),
            ("backend-services", {"name": "s", "mesh": "m1", "health_checks": ["c"],
                                  "backends": [{"endpoint_group": "g"}]}),
        ]:
            response = session.post(f"http://127.0.0.1:{port}/api/v1/{collection}", json=body, timeout=10)
            assert response.status_code == 201, response.text

        def verdicts():
            with sqlite3.connect(state / "interlock-dev.sqlite3") as db:
                return db.execute("SELECT health FROM health_verdict").fetchall()

        eventually(lambda: verdicts() == [("HEALTHY",)], "the dev worker's verdict", dev)
    finally:
        dev.stop()


RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


def test_rabbitmq_works_as_the_broker_by_changing_only_its_url(api, tenant, tmp_path, settings, server):
    """A worker and the beat with CELERY_BROKER_URL set to RabbitMQ (the beat's
    lock stays in Redis): the rounds run and the verdict follows the endpoint."""
    region = f"rq{uuid.uuid4().hex[:8]}"  # a queue of its own on the shared RabbitMQ
    check, (endpoint,) = web_service(api, tenant, server, regions=(region,))
    processes = Interlock(settings, tmp_path, HEALTH_REGIONS=region, CELERY_BROKER_URL=RABBITMQ_URL)
    try:
        worker = processes.worker(region)
        beat = processes("beat", name="beat")
        eventually(lambda: verdict_of(check, endpoint) == Health.HEALTHY, "HEALTHY over RabbitMQ", worker, beat)
        server.stop()
        eventually(lambda: verdict_of(check, endpoint) == Health.UNHEALTHY, "UNHEALTHY over RabbitMQ", worker, beat)
        assert "amqp://" in worker.text()  # the worker says which broker it uses
    finally:
        processes.stop_all()
