"""Recording probe results and scheduling rounds against the real database:
compare-and-swap writes, so a duplicated or late batch changes nothing, and
a notice per affected mesh."""
import datetime

import pytest
from django.utils import timezone

from service.health.models import Health, ProbeSchedule, RegionProbe, Verdict
from service.health.recording import Result, record_batch
from service.health.scheduling import claim_due_rounds
from service.mesh.models import Endpoint, HealthCheck
from tests.e2e.support import create
from tests.service.health.support import checked_service

pytestmark = pytest.mark.django_db



@pytest.fixture
def at():
    """Moments from the test's start: results are fresh for a few check intervals only."""
    start = timezone.now()
    return lambda seconds: start + datetime.timedelta(seconds=seconds)


@pytest.fixture
def web(api, tenant):
    checked_service(api, [("10.0.0.1", 80), ("10.0.0.2", 80)], port=80)
    check = HealthCheck.objects.for_tenant(tenant).select_related("tenant").get(name="web-check")
    endpoints = list(Endpoint.objects.for_tenant(tenant).order_by("address"))
    return check, endpoints


def results(endpoints, *oks):
    return [Result(key=e.pk, ok=ok, latency_ms=1.0 if ok else None, address=f"{e.address}:80",
                   error="" if ok else "connect failed") for e, ok in zip(endpoints, oks)]


def health(check, endpoint):
    return Verdict.objects.get(health_check=check, endpoint=endpoint).health


def test_one_success_makes_a_new_endpoint_healthy_and_says_so(at, web, django_capture_on_commit_callbacks):
    check, (first, second) = web
    with django_capture_on_commit_callbacks() as published:
        notices = record_batch(check, "r1", at(0), results([first, second], True, False))
    assert health(check, first) == Health.HEALTHY
    assert health(check, second) == Health.UNKNOWN
    (notice,) = notices
    assert len(published) == 1
    assert (notice.tenant, notice.mesh, notice.kinds) == ("acme", "m1", ("endpoint-health",))
    assert notice.resources == (("backend-services", "web"),)
    assert notice.endpoints == (("web", "web-group", "10.0.0.1", 80, "HEALTHY"),)
    probe = RegionProbe.objects.get(health_check=check, endpoint=second, region="r1")
    assert (probe.state, probe.failures, probe.probed_at, probe.error) == (Health.UNKNOWN, 1, at(0), "connect failed")


def test_unhealthy_after_the_threshold_and_healthy_again_after_its_own(at, web):
    check, (endpoint, _) = web
    record_batch(check, "r1", at(0), results([endpoint], True))
    record_batch(check, "r1", at(1), results([endpoint], False))
    assert health(check, endpoint) == Health.HEALTHY
    (notice,) = record_batch(check, "r1", at(2), results([endpoint], False))
    assert health(check, endpoint) == Health.UNHEALTHY
    assert notice.endpoints == (("web", "web-group", "10.0.0.1", 80, "UNHEALTHY"),)
    assert record_batch(check, "r1", at(3), results([endpoint], True)) == []
    assert health(check, endpoint) == Health.UNHEALTHY
    record_batch(check, "r1", at(4), results([endpoint], True))
    assert health(check, endpoint) == Health.HEALTHY


def test_a_duplicated_batch_changes_nothing(at, web):
    check, (endpoint, _) = web
    record_batch(check, "r1", at(0), results([endpoint], True))
    record_batch(check, "r1", at(1), results([endpoint], False))
    before = RegionProbe.objects.get(endpoint=endpoint)
    # The same round again: without the guard it would be the second failure, and UNHEALTHY.
    assert record_batch(check, "r1", at(1), results([endpoint], False)) == []
    after = RegionProbe.objects.get(endpoint=endpoint)
    assert (after.failures, after.updated_at) == (1, before.updated_at)
    assert health(check, endpoint) == Health.HEALTHY


def test_a_late_batch_of_an_older_round_changes_nothing(at, web):
    check, (endpoint, _) = web
    record_batch(check, "r1", at(5), results([endpoint], True))
    assert record_batch(check, "r1", at(4), results([endpoint], False)) == []
    assert RegionProbe.objects.get(endpoint=endpoint).probed_at == at(5)


def test_a_majority_of_fresh_regions_decides(web):
    check, (endpoint, _) = web
    now = timezone.now()
    record_batch(check, "r1", now, results([endpoint], True))
    record_batch(check, "r2", now, results([endpoint], True))
    for round in (1, 2):
        record_batch(check, "r1", now + datetime.timedelta(seconds=round / 10), results([endpoint], False))
    assert health(check, endpoint) == Health.HEALTHY  # one of two: an even split stays healthy
    for round in (1, 2):
        record_batch(check, "r3", now + datetime.timedelta(seconds=round / 10), results([endpoint], False))
    assert health(check, endpoint) == Health.UNHEALTHY  # two of three


def test_a_stale_region_is_ignored(web):
    check, (endpoint, _) = web
    now = timezone.now()
    long_ago = now - datetime.timedelta(minutes=5)
    for round in (0, 1):
        record_batch(check, "silent", long_ago + datetime.timedelta(seconds=round), results([endpoint], False))
    record_batch(check, "r1", now, results([endpoint], True))
    assert health(check, endpoint) == Health.HEALTHY


def test_results_for_another_tenants_endpoints_are_ignored(at, web, other_api):
    check, _ = web
    checked_service(other_api, [("10.9.9.9", 80)], port=80, name="theirs")
    theirs = Endpoint.objects.get(address="10.9.9.9")
    assert record_batch(check, "r1", at(0), results([theirs], True)) == []
    assert not RegionProbe.objects.filter(endpoint=theirs).exists()
    assert not Verdict.objects.filter(endpoint=theirs).exists()


def test_a_notice_per_mesh_naming_each_service_that_uses_the_check_and_group(at, api, web):
    check, (endpoint, _) = web
    create(api, "meshes", {"name": "m2"})
    create(api, "backend-services", {"name": "web-too", "mesh": "m2", "health_checks": ["web-check"],
                                     "backends": [{"endpoint_group": "web-group"}]})
    notices = record_batch(check, "r1", at(0), results([endpoint], True))
    assert [(n.mesh, n.resources, n.endpoints) for n in notices] == [
        ("m1", (("backend-services", "web"),), (("web", "web-group", "10.0.0.1", 80, "HEALTHY"),)),
        ("m2", (("backend-services", "web-too"),), (("web-too", "web-group", "10.0.0.1", 80, "HEALTHY"),)),
    ]


def test_a_round_is_claimed_once(web, settings):
    settings.HEALTH_REGIONS = ["r1", "r2"]
    check, endpoints = web
    now = timezone.now()
    (round,) = claim_due_rounds(now)
    assert (round.health_check_id, round.round_at, round.regions) == (check.pk, now, ("r1", "r2"))
    assert round.endpoint_ids == tuple(sorted(e.pk for e in endpoints))
    assert round.expires_at == now + datetime.timedelta(seconds=1)
    # A second scheduler at the same moment (a second beat, a retried tick) finds nothing due.
    assert claim_due_rounds(now) == []
    assert ProbeSchedule.objects.get(health_check=check).next_round_at == now + datetime.timedelta(seconds=1)
    (following,) = claim_due_rounds(now + datetime.timedelta(seconds=1.2))
    # The cadence holds: due one interval after the last one was due.
    assert ProbeSchedule.objects.get(health_check=check).next_round_at == now + datetime.timedelta(seconds=2)
    assert following.round_at == now + datetime.timedelta(seconds=1.2)


def test_a_round_goes_to_the_checks_own_source_regions_in_bounded_batches(api, tenant, settings):
    settings.HEALTH_REGIONS = ["r1", "r2"]
    checked_service(api, [(f"10.0.1.{i}", 80) for i in range(1, 6)], port=80, regions=("eu",))
    (round,) = claim_due_rounds(timezone.now())
    assert round.regions == ("eu",)
    assert [len(batch) for batch in round.batches(2)] == [2, 2, 1]



def test_a_round_due_within_the_early_margin_starts_now(web):
    check, _ = web
    now = timezone.now()
    claim_due_rounds(now)
    early = datetime.timedelta(seconds=0.5)
    assert claim_due_rounds(now + datetime.timedelta(seconds=0.4)) == []
    assert len(claim_due_rounds(now + datetime.timedelta(seconds=0.6), early=early)) == 1
    assert ProbeSchedule.objects.get(health_check=check).next_round_at == now + datetime.timedelta(seconds=2)
