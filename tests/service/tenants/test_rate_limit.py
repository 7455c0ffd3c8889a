"""The per-key rate limit: exactly N requests in a window, a sliding estimate
across windows, a Retry-After that is when the next request gets in, one
limit shared by every process."""
import threading
from types import SimpleNamespace

import pytest
from django.core.cache import cache

from service.tenants.models import APIKey
from service.tenants.services import issue_api_key
from service.tenants.throttling import APIKeyRateThrottle
from tests.conftest import TenantClient

MINUTE = 60
WINDOW_START = 28_000_000 * MINUTE  # a whole number of minutes since the epoch


@pytest.fixture
def clock(monkeypatch):
    now = [WINDOW_START + 1.0]
    monkeypatch.setattr(APIKeyRateThrottle, "timer", staticmethod(lambda: now[0]))
    return now


def limited_client(tenant, rate):
    return TenantClient(tenant, issue_api_key(tenant, "limited", rate_limit=rate).plaintext)


def statuses(client, count):
    return [client.get("/api/v1/meshes").status_code for _ in range(count)]


def test_exactly_n_requests_per_window(tenant, clock):
    client = limited_client(tenant, "4/min")
    assert statuses(client, 6) == [200] * 4 + [429] * 2
    clock[0] += 30
    assert statuses(client, 1) == [429]  # still the same window


def test_retry_after_is_when_the_next_request_gets_in(tenant, clock):
    client = limited_client(tenant, "4/min")
    assert statuses(client, 4) == [200] * 4
    refused = client.get("/api/v1/meshes")
    assert refused.status_code == 429
    assert refused.json()["code"] == "throttled"
    retry_after = int(refused["Retry-After"])
    # 59 s to the next window, then a quarter of it while the 4 age out of the estimate.
    assert retry_after == 59 + 15
    start = clock[0]
    clock[0] = start + retry_after - 1
    assert statuses(client, 1) == [429]
    clock[0] = start + retry_after
    assert statuses(client, 1) == [200]


def test_the_previous_window_counts_as_much_as_it_overlaps(tenant, clock):
    client = limited_client(tenant, "4/min")
    assert statuses(client, 4) == [200] * 4
    clock[0] = WINDOW_START + MINUTE + 30  # half of the previous window still in view: 2 of 4 left
    assert statuses(client, 3) == [200, 200, 429]
    clock[0] = WINDOW_START + 3 * MINUTE  # two windows on, nothing in view
    assert statuses(client, 5) == [200] * 4 + [429]


def test_retry_after_within_a_window_waits_for_the_previous_to_age(tenant, clock):
    client = limited_client(tenant, "4/min")
    assert statuses(client, 4) == [200] * 4
    clock[0] = WINDOW_START + MINUTE + 30
    assert statuses(client, 2) == [200] * 2
    refused = client.get("/api/v1/meshes")
    assert refused.status_code == 429
    # 4 * (1 - t/60) + 2 + 1 <= 4 once t >= 45: fifteen seconds on.
    assert refused["Retry-After"] == "15"


def test_refused_requests_do_not_count(tenant, clock):
    client = limited_client(tenant, "2/min")
    assert statuses(client, 12) == [200] * 2 + [429] * 10
    clock[0] = WINDOW_START + MINUTE + 45  # a quarter of the 2 allowed (not of all 12) still in view
    assert statuses(client, 2) == [200, 429]


def test_keys_without_a_rate_get_the_service_default(tenant, client_for, clock, monkeypatch):
    monkeypatch.setattr(APIKeyRateThrottle, "THROTTLE_RATES", {"api_key": "3/min"})
    client = client_for(tenant, name="plain")
    assert statuses(client, 4) == [200] * 3 + [429]
    # A key's own rate wins over the default.
    assert statuses(limited_client(tenant, "5/min"), 6) == [200] * 5 + [429]


def test_every_process_shares_one_limit(tenant, clock):
    """Threads, each with its own cache connection, stand in for processes."""
    issued = issue_api_key(tenant, "shared", rate_limit="25/min")
    key = APIKey.objects.select_related("tenant").get(pk=issued.record.pk)
    allowed, start = [], threading.Barrier(8)

    def process():
        start.wait()
        for _ in range(10):
            if APIKeyRateThrottle().allow_request(SimpleNamespace(auth=key), None):
                allowed.append(1)

    threads = [threading.Thread(target=process) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(allowed) == 25


def test_the_counters_are_small(tenant, clock):
    """One integer per key and window, whatever the rate: the cost of a
    request does not grow with the requests before it."""
    client = limited_client(tenant, "6000/min")
    assert statuses(client, 30) == [200] * 30
    key = APIKey.objects.get(tenant=tenant, name="limited")
    counter = f"throttle_api_key_{key.pk}_{MINUTE}_{int(clock[0] // MINUTE)}"
    assert cache.get(counter) == 30
