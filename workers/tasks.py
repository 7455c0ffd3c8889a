"""The health workers' tasks: ids in, a few lines that call domain code
(service/health for scheduling and recording, workers/rounds.py for probing)."""
import datetime

from django.conf import settings
from django.utils import timezone

from service.health.recording import record_batch
from service.health.scheduling import claim_due_rounds
from service.mesh.models import HealthCheck
from workers.celery import TASK_RETRIES, TRANSIENT_ERRORS, app, region_queue
from workers.rounds import probe_endpoints

RETRY_ON_TRANSIENT_ERRORS = {"autoretry_for": TRANSIENT_ERRORS, "max_retries": TASK_RETRIES, "retry_backoff": True}


@app.task(**RETRY_ON_TRANSIENT_ERRORS)
def schedule_rounds():
    """The beat's tick: claims the rounds due and sends each region its batches."""
    half_a_tick = datetime.timedelta(seconds=settings.HEALTH_TICK_SEC / 2)
    for due in claim_due_rounds(timezone.now(), early=half_a_tick):
        for region in due.regions:
            for endpoint_ids in due.batches(settings.HEALTH_PROBE_BATCH):
                send_probe_batch(due.health_check_id, region, endpoint_ids, due.round_at, due.expires_at)


def send_probe_batch(health_check_id: int, region: str, endpoint_ids: list[int], round_at: datetime.datetime,
                     expires_at: datetime.datetime):
    probe_batch.apply_async(
        kwargs={"health_check_id": health_check_id, "region": region, "endpoint_ids": endpoint_ids,
                "round_at": round_at.isoformat()},
        queue=region_queue(region), expires=expires_at,
    )


@app.task(**RETRY_ON_TRANSIENT_ERRORS)
def probe_batch(health_check_id: int, region: str, endpoint_ids: list[int], round_at: str):
    """Probes some endpoints of one round from this region and records the results."""
    check = HealthCheck.objects.select_related("tenant").filter(pk=health_check_id).first()
    if check is None:  # deleted since the round started
        return
    results = probe_endpoints(check, region, endpoint_ids)
    record_batch(check, region, datetime.datetime.fromisoformat(round_at), results)
