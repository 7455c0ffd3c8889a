"""Translation is deterministic, reuses what did not change, and a translation
made from the previous one is the translation made from scratch."""
from dataclasses import replace

import pytest
from envoy.config.endpoint.v3 import endpoint_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from service.xds.policy import (
    BackendPolicy, EndpointPolicy, Locality, MeshPolicy, RoutePolicy, ServicePolicy, freeze, load_policy,
)
from service.xds.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE
from service.xds.translate import ProxyLocality, translate
from tests.service.xds.translation.meshes import full_featured_mesh, patch, post

VIRGINIA = ProxyLocality("aws", "us-east-1", "us-east-1a")
BELGIUM = ProxyLocality("gcp", "europe-west1")
LOCALITIES = (VIRGINIA, BELGIUM, ProxyLocality())


def contents(snapshot):
    """Type -> name -> (version, wildcard): what a proxy would receive."""
    return {type_url: {name: (r.version, r.wildcard) for name, r in by_name.items()}
            for type_url, by_name in snapshot.resources.items()}


def same_as_from_scratch(translation):
    scratch = translate(translation.policy)
    for locality in LOCALITIES:
        assert contents(translation.snapshot(locality)) == contents(scratch.snapshot(locality)), locality


@pytest.mark.django_db
def test_deterministic(full_policy):
    again = translate(full_policy)
    for locality in LOCALITIES:
        assert contents(translate(full_policy).snapshot(locality)) == contents(again.snapshot(locality))


@pytest.mark.django_db
def test_nothing_changed_means_the_very_same_resources(full_policy):
    first = translate(full_policy)
    before = {loc: first.snapshot(loc) for loc in LOCALITIES}
    second = translate(full_policy, previous=first)
    for locality, snapshot in before.items():
        after = second.snapshot(locality)
        for type_url, by_name in snapshot.resources.items():
            assert all(after.resources[type_url][name] is resource for name, resource in by_name.items())


@pytest.mark.django_db
def test_everything_but_eds_is_shared_between_localities(full_policy):
    translation = translate(full_policy)
    virginia, belgium = translation.snapshot(VIRGINIA), translation.snapshot(BELGIUM)
    for type_url in (LISTENER, ROUTE):
        assert all(belgium.resources[type_url][name] is r for name, r in virginia.resources[type_url].items())
    assert all(belgium.resources[CLUSTER][name] is r for name, r in virginia.resources[CLUSTER].items())
    # web has endpoints in both places, so the two see different priorities.
    assert virginia.resources[ENDPOINT]["web"].version != belgium.resources[ENDPOINT]["web"].version
    assert translation.snapshot(ProxyLocality("aws", "us-east-1", "another-zone")) is virginia


@pytest.mark.django_db
def test_one_endpoint_rebuilds_one_load_assignment(api):
    post(api, "meshes", {"name": "m1"})
    for i in range(3):
        post(api, "endpoint-groups", {"name": f"g{i}", "locality": {"cloud": "aws", "region": "us-east-1"},
                                      "endpoints": [{"address": f"10.0.{i}.1", "port": 80}]})
        post(api, "backend-services", {"name": f"s{i}", "mesh": "m1", "backends": [{"endpoint_group": f"g{i}"}]})
        post(api, "http-routes", {"name": f"r{i}", "meshes": ["m1"], "hostnames": [f"s{i}.example.com"],
                                  "rules": [{"action": {"destinations": [{"service_name": f"s{i}"}]}}]})
    first = translate(load_policy("acme", "m1"))
    before = first.snapshot(VIRGINIA)
    response = api.post("/api/v1/endpoint-groups/g1/attach", {"endpoints": [{"address": "10.0.1.2", "port": 80}]},
                        format="json")
    assert response.status_code == 200, response.json()
    second = translate(load_policy("acme", "m1"), previous=first)
    after = second.snapshot(VIRGINIA)
    rebuilt = {(type_url, name) for type_url, by_name in after.resources.items()
               for name, resource in by_name.items() if before.resources[type_url].get(name) is not resource}
    assert rebuilt == {(ENDPOINT, "s1")}
    assert endpoint_addresses(after, "s1") == ["10.0.1.1", "10.0.1.2"]
    same_as_from_scratch(second)


def endpoint_addresses(snapshot, name):
    assignment = endpoint_pb2.ClusterLoadAssignment.FromString(snapshot.resources[ENDPOINT][name].body)
    return [e.endpoint.address.socket_address.address for loc in assignment.endpoints for e in loc.lb_endpoints]


CHANGES = [
    ("endpoint added", lambda api: api.post("/api/v1/endpoint-groups/use1a/attach",
                                            {"endpoints": [{"address": "10.0.0.3", "port": 8080}]}, format="json")),
    ("endpoint removed", lambda api: api.post("/api/v1/endpoint-groups/euw1/detach",
                                              {"endpoints": [{"address": "10.2.0.1", "port": 8080}]}, format="json")),
    ("endpoints become a host name", lambda api: patch(api, "endpoint-groups", "usw2", {
        "endpoints": [{"address": "db.internal.example.com", "port": 5432}]})),
    ("a route's weights", lambda api: patch(api, "http-routes", "web", {"rules": [
        {"action": {"destinations": [{"service_name": "web", "weight": 50},
                                     {"service_name": "web-canary", "weight": 50}]}}]})),
    ("a destination's timeout", lambda api: patch(api, "backend-services", "grpc-svc", {"timeout_sec": 7})),
    ("a destination's hashing", lambda api: patch(api, "backend-services", "web-canary", {
        "locality_lb_policy": "RING_HASH", "session_affinity": "CLIENT_IP"})),
    ("failover", lambda api: patch(api, "backend-services", "web", {"failover": {"mode": "DISABLED"}})),
    ("a TCP route's ports", lambda api: patch(api, "tcp-routes", "db", {"rules": [
        {"matches": [{"port": 7000}], "action": {"destinations": [{"service_name": "db-replica"}]}}]})),
    ("a route's hostnames", lambda api: patch(api, "grpc-routes", "greeter", {"hostnames": ["hello.example.com"]})),
    ("interception port", lambda api: patch(api, "meshes", "m1", {"interception_port": 15006})),
    ("a route goes", lambda api: api.delete("/api/v1/tcp-routes/db")),
    ("a new route", lambda api: post(api, "http-routes", {
        "name": "extra", "meshes": ["m1"], "hostnames": ["x.example"],
        "rules": [{"action": {"destinations": [{"service_name": "random"}]}}]})),
    ("a service goes", lambda api: (api.delete("/api/v1/http-routes/extra"),
                                    api.delete("/api/v1/backend-services/random"))),
]


@pytest.mark.django_db
def test_from_the_previous_translation_equals_from_scratch_through_a_series_of_changes(api):
    full_featured_mesh(api)
    translation = translate(load_policy("acme", "m1"))
    for locality in LOCALITIES:
        translation.snapshot(locality)
    for what, change in CHANGES:
        change(api)
        policy = load_policy("acme", "m1")
        assert policy != translation.policy, what
        previous_versions = contents(translation.snapshot(VIRGINIA))
        translation = translate(policy, previous=translation)
        same_as_from_scratch(translation)
        assert contents(translation.snapshot(VIRGINIA)) != previous_versions, what


# --- the same property over generated policies, without a database ---------------------------------------------------

NAMES = ("a", "b", "c", "d")
localities = st.sampled_from([Locality("aws", "us-east-1", "z1"), Locality("aws", "us-west-2", "z2"),
                              Locality("gcp", "europe-west1", "b"), Locality()])
endpoints = st.lists(st.builds(EndpointPolicy, address=st.sampled_from(["10.0.0.1", "10.0.0.2", "svc.example.com"]),
                               port=st.sampled_from([80, 8080]), weight=st.integers(1, 3),
                               health=st.sampled_from(["UNKNOWN", "HEALTHY", "UNHEALTHY"])),
                     max_size=3, unique_by=lambda e: (e.address, e.port)).map(tuple)
backends = st.lists(st.builds(BackendPolicy, group=st.sampled_from(["g1", "g2", "g3"]), locality=localities,
                              endpoints=endpoints, capacity=st.sampled_from([0.0, 0.5, 1.0]),
                              preference=st.sampled_from(["DEFAULT", "PREFERRED"])),
                    max_size=3, unique_by=lambda b: b.group).map(tuple)
hashing = st.sampled_from([
    ("ROUND_ROBIN", "NONE", None), ("LEAST_REQUEST", "NONE", None), ("RANDOM", "NONE", None),
    ("RING_HASH", "CLIENT_IP", None), ("RING_HASH", "NONE", freeze({"use_source_ip": True})),
    ("MAGLEV", "HEADER_FIELD", freeze({"http_header_name": "x-user"})),
    ("MAGLEV", "HEADER_FIELD", freeze({"http_header_name": "x-tenant"})),
    ("RING_HASH", "HTTP_COOKIE", freeze({"http_cookie": {"name": "s"}, "minimum_ring_size": 64})),
    ("RING_HASH", "HTTP_COOKIE", freeze({"http_cookie": {"name": "s", "ttl_sec": 5}})),
    ("RING_HASH", "GENERATED_COOKIE", None),
])
failovers = st.sampled_from([None, freeze({"mode": "DISABLED"}), freeze({"failover_ratio": 0.5}),
                             freeze({"drop_traffic_if_unhealthy": True})])


@st.composite
def services(draw, name):
    lb, affinity, consistent_hash = draw(hashing)
    return ServicePolicy(name=name, protocol=draw(st.sampled_from(["HTTP", "GRPC", "TCP"])), locality_lb_policy=lb,
                         session_affinity=affinity, consistent_hash=consistent_hash,
                         timeout_sec=draw(st.sampled_from([10.0, 30.0])), failover=draw(failovers),
                         circuit_breakers=draw(st.sampled_from([None, freeze({"max_requests": 10})])),
                         backends=draw(backends))


destinations = st.lists(st.fixed_dictionaries({"service_name": st.sampled_from(NAMES), "weight": st.integers(1, 3)}),
                        min_size=1, max_size=2, unique_by=lambda d: d["service_name"])
http_rules = st.lists(st.fixed_dictionaries(
    {"action": st.fixed_dictionaries({"destinations": destinations},
                                     optional={"timeout_sec": st.sampled_from([1.0, 2.0])})},
    optional={"matches": st.lists(st.sampled_from([{"prefix_match": "/a"}, {"full_path_match": "/b"}]),
                                  min_size=1, max_size=2)}), min_size=1, max_size=2)
tcp_rules = st.lists(st.fixed_dictionaries({
    "matches": st.lists(st.fixed_dictionaries({"address": st.sampled_from(["0.0.0.0/0", "10.0.0.0/8"]),
                                               "port": st.sampled_from([5432, 6432])}), min_size=1, max_size=2),
    "action": st.fixed_dictionaries({"destinations": destinations})}), min_size=1, max_size=2)


def routes_of(draw):
    hostnames = st.lists(st.sampled_from(["a.example", "*.b.example", "c.example:81"]), min_size=1, max_size=2,
                         unique=True)
    routes = [RoutePolicy("http", name, tuple(draw(hostnames)), freeze(draw(http_rules)))
              for name in draw(st.lists(st.sampled_from(["r1", "r2"]), unique=True))]
    if draw(st.booleans()):
        routes.append(RoutePolicy("tcp", "t1", (), freeze(draw(tcp_rules))))
    return tuple(sorted(routes, key=lambda r: (r.type, r.name)))


@st.composite
def mesh_policies(draw):
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=4))
    return MeshPolicy("acme", "m1", 1, draw(st.sampled_from([15001, 15002])),
                      services=tuple(draw(services(name)) for name in sorted(names)), routes=routes_of(draw))


# One field of one service at a time: the changes where reuse must not go wrong.
FIELD_CHANGES = {
    "protocol": st.sampled_from(["HTTP", "GRPC", "TCP"]),
    "locality_lb_policy": st.sampled_from(["ROUND_ROBIN", "RING_HASH", "MAGLEV"]),
    "timeout_sec": st.sampled_from([10.0, 30.0, 45.0]),
    "session_affinity": st.sampled_from(["NONE", "CLIENT_IP", "HEADER_FIELD", "HTTP_COOKIE", "GENERATED_COOKIE"]),
    "consistent_hash": hashing.map(lambda choice: choice[2]),
    "failover": failovers,
    "circuit_breakers": st.sampled_from([None, freeze({"max_requests": 10}), freeze({"max_requests": 20})]),
    "backends": backends,
}


@st.composite
def policy_and_change(draw):
    """A policy, and another with one field of one service changed, or with
    services, routes and port each kept or redrawn."""
    first = draw(mesh_policies())
    if first.services and draw(st.booleans()):
        service = draw(st.sampled_from(first.services))
        field = draw(st.sampled_from(sorted(FIELD_CHANGES)))
        changed = service._replace(**{field: draw(FIELD_CHANGES[field])})
        return first, replace(first, services=tuple(changed if s is service else s for s in first.services))
    kept = [service for service in first.services if draw(st.booleans())]
    added = [draw(services(name)) for name in draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=2))
             if name not in {service.name for service in kept}]
    second = MeshPolicy(
        "acme", "m1", 2, first.interception_port if draw(st.booleans()) else 15003,
        services=tuple(sorted(kept + added, key=lambda service: service.name)),
        routes=first.routes if draw(st.booleans()) else routes_of(draw))
    return first, second


@settings(max_examples=200, deadline=None)
@given(policy_and_change())
def test_generated_from_previous_equals_from_scratch(policies):
    first, second = policies
    previous = translate(first)
    previous.snapshot(VIRGINIA)  # the per-locality parts exist, so they are carried over
    same_as_from_scratch(translate(second, previous=previous))
    same_as_from_scratch(translate(first, previous=translate(second, previous=previous)))
