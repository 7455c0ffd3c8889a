"""A real replica, a real ADS stream: an "endpoint-health" notice on the real
bus re-sends only the ClusterLoadAssignment of the service it names, with the
verdicts as health_status, without re-reading the mesh; a verdict recorded in
the database reaches a replica that loads the mesh afresh, and one whose notice
was lost reaches it by the periodic catch-up."""
import time

import pytest
from django.utils import timezone
from envoy.config.core.v3 import health_check_pb2
from envoy.config.endpoint.v3 import endpoint_pb2

from service.notices import ChangeNotice, get_bus
from service.xds.policy import load_verdicts
from service.xds.replica import ReplicaConfig, ReplicaThread
from service.xds.snapshot import CLUSTER, ENDPOINT
from service.xds.sync import current_marks
from tests.service.xds.conftest import node, sotw_request

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def checked_mesh(api, mesh):
    """web and api share group g (two endpoints); web has a health check."""
    for collection, body in (
            ("health-checks", {"name": "hc", "tcp_health_check": {"port": 8080}}),
            ("endpoint-groups", {"name": "g", "locality": {"cloud": "aws", "region": "us-east-1", "zone": "us-east-1a"},
                                 "endpoints": [{"address": "10.0.0.1", "port": 8080},
                                               {"address": "10.0.0.2", "port": 8080}]}),
            ("backend-services", {"name": "web", "mesh": mesh, "health_checks": ["hc"],
                                  "backends": [{"endpoint_group": "g"}]}),
            ("backend-services", {"name": "api", "mesh": mesh, "backends": [{"endpoint_group": "g"}]})):
        response = api.post(f"/api/v1/{collection}", body, format="json")
        assert response.status_code == 201, response.json()
    return mesh


def health_of(response):
    found = {}
    for any_ in response.resources:
        assignment = endpoint_pb2.ClusterLoadAssignment()
        any_.Unpack(assignment)
        found[assignment.cluster_name] = [
            (e.endpoint.address.socket_address.address, health_check_pb2.HealthStatus.Name(e.health_status))
            for locality in assignment.endpoints for e in locality.lb_endpoints]
    return found


def subscribe(streams, channel, token):
    stream = streams(channel, token)
    stream.send(sotw_request(CLUSTER, node("sidecar")))
    clusters = stream.recv()
    assert clusters.type_url == CLUSTER and len(clusters.resources) == 2
    stream.send(sotw_request(CLUSTER, version=clusters.version_info, nonce=clusters.nonce))
    stream.send(sotw_request(ENDPOINT, names=["web", "api"]))
    endpoints = stream.recv()
    assert endpoints.type_url == ENDPOINT
    stream.send(sotw_request(ENDPOINT, names=["web", "api"], version=endpoints.version_info, nonce=endpoints.nonce))
    return stream, endpoints


def test_a_health_notice_re_sends_only_eds_with_the_verdicts_and_reads_nothing(
        checked_mesh, token, translating_replica, channels, streams):
    stream, first = subscribe(streams, channels(translating_replica), token)
    assert health_of(first) == {"web": [("10.0.0.1", "UNKNOWN"), ("10.0.0.2", "UNKNOWN")],
                                "api": [("10.0.0.1", "UNKNOWN"), ("10.0.0.2", "UNKNOWN")]}
    refreshes = translating_replica.sync.refreshes

    get_bus().publish(ChangeNotice("acme", checked_mesh, 1, ("endpoint-health",), (("backend-services", "web"),),
                                   (("web", "g", "10.0.0.1", 8080, "UNHEALTHY"),
                                    ("web", "g", "10.0.0.2", 8080, "HEALTHY"))))
    pushed = stream.recv()
    assert pushed.type_url == ENDPOINT
    assert health_of(pushed) == {"web": [("10.0.0.1", "UNHEALTHY"), ("10.0.0.2", "HEALTHY")],
                                 "api": [("10.0.0.1", "UNKNOWN"), ("10.0.0.2", "UNKNOWN")]}  # api has no check
    stream.send(sotw_request(ENDPOINT, names=["web", "api"], version=pushed.version_info, nonce=pushed.nonce))
    stream.nothing_within(0.3)  # no CDS (nor anything else): the clusters did not change
    assert translating_replica.sync.refreshes == refreshes  # applied to the held translation, not re-read
    assert translating_replica.sync.health_updates == 1


def test_every_endpoint_unhealthy_is_sent_as_unknown(checked_mesh, token, translating_replica, channels, streams):
    stream, _ = subscribe(streams, channels(translating_replica), token)
    bus = get_bus()
    for healths in (("UNHEALTHY", "HEALTHY"), ("UNHEALTHY", "UNHEALTHY")):
        bus.publish(ChangeNotice("acme", checked_mesh, 1, ("endpoint-health",), (("backend-services", "web"),),
                                 tuple(("web", "g", address, 8080, health)
                                       for address, health in zip(("10.0.0.1", "10.0.0.2"), healths))))
        pushed = stream.recv()
        stream.send(sotw_request(ENDPOINT, names=["web", "api"], version=pushed.version_info, nonce=pushed.nonce))
    assert health_of(pushed)["web"] == [("10.0.0.1", "UNKNOWN"), ("10.0.0.2", "UNKNOWN")]  # failing open


def test_a_replica_loading_the_mesh_reads_the_recorded_verdicts(
        checked_mesh, tenant, token, translating_replica, channels, streams):
    from service.health.models import Verdict
    from service.mesh.models import Endpoint, HealthCheck

    Verdict.objects.create(tenant=tenant, health_check=HealthCheck.objects.get(name="hc"),
                           endpoint=Endpoint.objects.get(address="10.0.0.2"), health="UNHEALTHY")
    _, first = subscribe(streams, channels(translating_replica), token)
    assert health_of(first)["web"] == [("10.0.0.1", "UNKNOWN"), ("10.0.0.2", "UNHEALTHY")]


# The catch-up interval of the replica below (XDS_CATCH_UP_SEC), short for the test.
CATCH_UP_SEC = 0.5


@pytest.fixture
def catching_up_replica():
    thread = ReplicaThread(ReplicaConfig(port=0, replica="real"), sync_options={"catch_up_every": CATCH_UP_SEC})
    replica = thread.start()
    yield replica
    thread.stop()


def set_verdict(tenant, address, health):
    """What a worker records, without the notice it publishes (lost in a Redis freeze)."""
    from service.health.models import Verdict
    from service.mesh.models import Endpoint, HealthCheck

    Verdict.objects.update_or_create(tenant=tenant, health_check=HealthCheck.objects.get(name="hc"),
                                     endpoint=Endpoint.objects.get(address=address),
                                     defaults={"health": health, "changed_at": timezone.now()})


def test_a_verdict_whose_notice_was_lost_reaches_the_stream_by_the_catch_up(
        checked_mesh, tenant, token, catching_up_replica, channels, streams):
    stream, _ = subscribe(streams, channels(catching_up_replica), token)
    sync = catching_up_replica.sync
    deadline = time.monotonic() + 10
    while sync.refreshes < 2:  # the catch-up's first look at the mesh (it refreshes a mesh new to it)
        assert time.monotonic() < deadline, "no catch-up"
        time.sleep(0.05)

    refreshes = sync.refreshes
    set_verdict(tenant, "10.0.0.2", "UNHEALTHY")
    started = time.monotonic()
    pushed = stream.recv(timeout=5)
    assert time.monotonic() - started < 2 * CATCH_UP_SEC + 1.0
    assert pushed.type_url == ENDPOINT
    assert health_of(pushed)["web"] == [("10.0.0.1", "UNKNOWN"), ("10.0.0.2", "UNHEALTHY")]
    assert sync.verdict_rereads >= 1 and sync.refreshes == refreshes  # the verdicts read again, not the mesh


def test_a_meshs_mark_moves_with_its_services_verdicts_only(checked_mesh, api, tenant):
    """The catch-up's query: a verdict change moves the mark of the meshes
    whose services use the check, and not their revision; other meshes keep theirs."""
    assert api.post("/api/v1/meshes", {"name": "m2"}, format="json").status_code == 201
    assert api.post("/api/v1/backend-services", {"name": "other", "mesh": "m2", "backends": [{"endpoint_group": "g"}]},
                    format="json").status_code == 201
    keys = [("acme", checked_mesh), ("acme", "m2"), ("acme", "gone")]
    before = current_marks(keys)
    assert set(before) == {("acme", checked_mesh), ("acme", "m2")}
    assert before[("acme", checked_mesh)].verdicts is None  # no verdict yet

    set_verdict(tenant, "10.0.0.1", "HEALTHY")
    first = current_marks(keys)
    set_verdict(tenant, "10.0.0.1", "UNHEALTHY")
    second = current_marks(keys)
    assert len({before[("acme", checked_mesh)], first[("acme", checked_mesh)], second[("acme", checked_mesh)]}) == 3
    assert second[("acme", checked_mesh)].revision == before[("acme", checked_mesh)].revision
    assert before[("acme", "m2")] == first[("acme", "m2")] == second[("acme", "m2")]


def test_the_stored_verdicts_read_again_are_each_services_own(checked_mesh, tenant):
    """What the catch-up applies when a mesh's verdicts moved: web's check's
    verdicts, for web only (api uses the group but has no check)."""
    set_verdict(tenant, "10.0.0.1", "UNHEALTHY")
    set_verdict(tenant, "10.0.0.2", "HEALTHY")
    assert sorted(load_verdicts("acme", checked_mesh)) == [("web", "g", "10.0.0.1", 8080, "UNHEALTHY"),
                                                          ("web", "g", "10.0.0.2", 8080, "HEALTHY")]
    assert load_verdicts("acme", "elsewhere") == [] and load_verdicts("other", checked_mesh) == []
