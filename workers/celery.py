"""The Celery app of the health workers.

Queues: one per source region, ``health.<region>``, that region's workers
consume (``interlock worker --region R``); a probe task goes to the queue of
the region it probes from. The beat's tick, which claims the probe rounds due
and sends their batches, goes to ``health-rounds``, which every worker also
consumes. The broker is CELERY_BROKER_URL: Redis, or RabbitMQ by its amqp://
URL; no result backend (a task's outcome is in the database).

Task defaults, in the shape Saleor and healthchecks use: every task here is
idempotent (its writes are compare-and-swap updates), so it is acknowledged
late, after it ran, and a task whose worker died is run again; retries happen
only on the named transient errors, a bounded number of times with backoff;
every probe task carries ``expires``, so a round its workers could not start
in time is dropped, not probed late.
"""
import os

import redis
from celery import Celery
from django.db import OperationalError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "service.settings")

ROUNDS_QUEUE = "health-rounds"
ROUNDS_TASK = "workers.tasks.schedule_rounds"
# The database or Redis away for a moment: worth a few tries, with backoff
# (up to 1, 2, 4 s, jittered); anything else is a bug to see in the log, not to retry.
TRANSIENT_ERRORS = (OperationalError, redis.ConnectionError, redis.TimeoutError)
TASK_RETRIES = 3


def region_queue(region: str) -> str:
    return f"health.{region}"


app = Celery("interlock")
# CELERY_BROKER_URL and any other CELERY_* Django setting.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    imports=("workers.tasks",),
    task_default_queue=ROUNDS_QUEUE,
    task_acks_late=True,
    task_ignore_result=True,
    # One task at a time per worker process, so a region's batches spread
    # over all of its worker processes instead of queuing behind one.
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.on_after_configure.connect
def schedule_the_tick(sender, **kwargs):
    from django.conf import settings

    # A tick not started within its own period is dropped: the next one does its work.
    sender.add_periodic_task(settings.HEALTH_TICK_SEC, sender.signature(ROUNDS_TASK),
                             name="health rounds", expires=settings.HEALTH_TICK_SEC)
