"""Endpoint health in EDS, fail open, and a health change applied to a held
policy: pure, on MeshPolicy values."""
import pytest
from envoy.config.core.v3 import health_check_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from service.health.failopen import fails_open
from service.xds.policy import BackendPolicy, EndpointPolicy, Locality, MeshPolicy, ServicePolicy, freeze
from service.xds.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE
from service.xds.translate import translate
from tests.service.xds.translation.test_translate_incremental import (
    VIRGINIA, mesh_policies, same_as_from_scratch,
)

EAST = Locality("aws", "us-east-1", "us-east-1a")
WEST = Locality("gcp", "europe-west1", "b")


def backend(group, locality, *healths, capacity=1.0):
    return BackendPolicy(group, locality, tuple(EndpointPolicy(f"10.0.{group[-1]}.{i}", 80, health=health)
                                                for i, health in enumerate(healths, 1)), capacity=capacity)


def mesh(*services):
    return MeshPolicy("acme", "m1", 1, services=tuple(sorted(services, key=lambda s: s.name)))


def sent_health(translation, service):
    """(group, address) -> health_status name, as the proxies of VIRGINIA get them."""
    body = translation.snapshot(VIRGINIA).resources[ENDPOINT][service].body
    assignment = endpoint_pb2.ClusterLoadAssignment.FromString(body)
    return {(locality.locality.sub_zone, e.endpoint.address.socket_address.address):
            health_check_pb2.HealthStatus.Name(e.health_status)
            for locality in assignment.endpoints for e in locality.lb_endpoints}


def test_each_endpoint_is_sent_with_its_health():
    service = ServicePolicy("web", backends=(backend("g1", EAST, "HEALTHY", "UNHEALTHY", "UNKNOWN"),))
    assert sent_health(translate(mesh(service)), "web") == {
        ("g1", "10.0.1.1"): "HEALTHY", ("g1", "10.0.1.2"): "UNHEALTHY", ("g1", "10.0.1.3"): "UNKNOWN"}


def test_all_unhealthy_across_every_backend_fails_open_as_unknown():
    service = ServicePolicy("web", backends=(backend("g1", EAST, "UNHEALTHY", "UNHEALTHY"),
                                             backend("g2", WEST, "UNHEALTHY")))
    assert service.fails_open
    assert set(sent_health(translate(mesh(service)), "web").values()) == {"UNKNOWN"}


def test_one_endpoint_not_unhealthy_anywhere_means_no_fail_open():
    for other in ("HEALTHY", "UNKNOWN"):
        service = ServicePolicy("web", backends=(backend("g1", EAST, "UNHEALTHY", "UNHEALTHY"),
                                                 backend("g2", WEST, other)))
        assert not service.fails_open
        assert sent_health(translate(mesh(service)), "web") == {
            ("g1", "10.0.1.1"): "UNHEALTHY", ("g1", "10.0.1.2"): "UNHEALTHY", ("g2", "10.0.2.1"): other}


def test_a_drained_backend_does_not_count_against_fail_open():
    """Its endpoints are not sent, so its healthy ones would not save the service."""
    service = ServicePolicy("web", backends=(backend("g1", EAST, "UNHEALTHY"),
                                             backend("g2", WEST, "HEALTHY", capacity=0.0)))
    assert service.fails_open
    assert sent_health(translate(mesh(service)), "web") == {("g1", "10.0.1.1"): "UNKNOWN"}


def test_drop_traffic_if_unhealthy_never_fails_open():
    service = ServicePolicy("web", failover=freeze({"drop_traffic_if_unhealthy": True}),
                            backends=(backend("g1", EAST, "UNHEALTHY", "UNHEALTHY"),))
    assert not service.fails_open
    assert set(sent_health(translate(mesh(service)), "web").values()) == {"UNHEALTHY"}


@pytest.mark.parametrize("healths, drop, expected", [
    ((), False, False),  # nothing to fail open to
    (("UNHEALTHY",), False, True),
    (("UNHEALTHY", "UNHEALTHY"), False, True),
    (("UNHEALTHY", "HEALTHY"), False, False),
    (("UNHEALTHY", "UNKNOWN"), False, False),
    (("UNHEALTHY",), True, False),
])
def test_fails_open_the_function_the_api_shares(healths, drop, expected):
    assert fails_open(iter(healths), drop_traffic_if_unhealthy=drop) is expected


# --- applying endpoint health changes to a held policy -------------------------------------------------------------


def two_services():
    return mesh(ServicePolicy("a", backends=(backend("g1", EAST, "UNKNOWN", "UNKNOWN"),)),
                ServicePolicy("b", backends=(backend("g1", EAST, "UNKNOWN", "UNKNOWN"), backend("g2", WEST, "UNKNOWN"))))


def test_with_endpoint_health_replaces_only_the_named_services_endpoints():
    policy = two_services()
    changed = policy.with_endpoint_health([("b", "g1", "10.0.1.2", 80, "UNHEALTHY")])
    a, b = changed.services
    assert a is policy.services[0]  # not named: the very same value
    assert [e.health for e in b.backends[0].endpoints] == ["UNKNOWN", "UNHEALTHY"]
    assert b.backends[1] is policy.services[1].backends[1]
    assert changed.revision == policy.revision and changed.routes is policy.routes


def test_with_endpoint_health_leaves_alone_what_it_does_not_have():
    policy = two_services()
    for change in (("gone", "g1", "10.0.1.1", 80, "HEALTHY"),  # a service gone
                   ("a", "g2", "10.0.2.1", 80, "HEALTHY"),  # a group the service does not use
                   ("a", "g1", "10.0.1.1", 81, "HEALTHY"),  # another port
                   ("a", "g1", "10.0.1.1", 80, "UNKNOWN")):  # no change at all
        assert policy.with_endpoint_health([change]) is policy


def test_a_health_change_rebuilds_only_that_services_load_assignment():
    policy = two_services()
    before = translate(policy)
    old = before.snapshot(VIRGINIA)
    after = translate(policy.with_endpoint_health([("b", "g2", "10.0.2.1", 80, "HEALTHY")]), before)
    new = after.snapshot(VIRGINIA)
    rebuilt = {(type_url, name) for type_url, by_name in new.resources.items()
               for name, resource in by_name.items() if old.resources[type_url].get(name) is not resource}
    assert rebuilt == {(ENDPOINT, "b")}
    assert all(new.version(t) == old.version(t) for t in (CLUSTER, LISTENER, ROUTE))
    assert new.version(ENDPOINT) != old.version(ENDPOINT)
    assert sent_health(after, "b")[("g2", "10.0.2.1")] == "HEALTHY"
    same_as_from_scratch(after)


health_changes = st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.sampled_from(["g1", "g2", "g3"]),
                                    st.sampled_from(["10.0.0.1", "10.0.0.2", "svc.example.com"]),
                                    st.sampled_from([80, 8080]),
                                    st.sampled_from(["UNKNOWN", "HEALTHY", "UNHEALTHY"])), max_size=6)


@settings(max_examples=200, deadline=None)
@given(mesh_policies(), health_changes)
def test_generated_health_changes_from_previous_equal_from_scratch(policy, changes):
    previous = translate(policy)
    previous.snapshot(VIRGINIA)
    changed = policy.with_endpoint_health(changes)
    expected = {(s, g, a, p): h for s, g, a, p, h in changes}  # the last change of an endpoint wins
    for service in changed.services:
        for b in service.backends:
            for e in b.endpoints:
                assert e.health == expected.get((service.name, b.group, e.address, e.port), e.health)
    same_as_from_scratch(translate(changed, previous))
