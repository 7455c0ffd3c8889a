"""Fixtures of the worker tests: the broker emptied, and `interlock` subprocesses."""
import pytest
import redis
from django.conf import settings

from tests.workers.processes import Interlock


@pytest.fixture
def broker():
    """The broker's Redis database, emptied: no queued task of an earlier test run."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def interlock(tmp_path, settings, broker):
    """Starts `interlock ARGS...` subprocesses (stopped at the test's end) that
    share this test's database, broker and notice channel."""
    processes = Interlock(settings, tmp_path, HEALTH_REGIONS="r1")
    try:
        yield processes
    finally:
        processes.stop_all()
