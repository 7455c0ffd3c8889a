"""Every feature of the resource model reaches Envoy: a mesh built through the
real API, read back with load_policy from Postgres, translated; assertions on
the proto fields."""
from dataclasses import replace

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2, config_source_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.load_balancing_policies.least_request.v3 import least_request_pb2
from envoy.extensions.load_balancing_policies.maglev.v3 import maglev_pb2
from envoy.extensions.load_balancing_policies.ring_hash.v3 import ring_hash_pb2
from envoy.extensions.load_balancing_policies.round_robin.v3 import round_robin_pb2

from service.xds.build import routes
from service.xds.policy import load_policy
from service.xds.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE
from service.xds.translate import ProxyLocality, translate
from tests.service.xds.translation.meshes import full_featured_mesh, patch

pytestmark = pytest.mark.django_db
VIRGINIA = ProxyLocality("aws", "us-east-1", "us-east-1a")
BELGIUM = ProxyLocality("gcp", "europe-west1", "europe-west1-b")
MESSAGE_TYPES = {CLUSTER: cluster_pb2.Cluster, ENDPOINT: endpoint_pb2.ClusterLoadAssignment,
                 LISTENER: listener_pb2.Listener, ROUTE: route_pb2.RouteConfiguration}


@pytest.fixture
def mesh(api):
    full_featured_mesh(api)


def snapshot_of(policy, locality=VIRGINIA):
    return translate(policy).snapshot(locality)


def stored():
    return load_policy("acme", "m1")


def get(snapshot, type_url, name):
    return MESSAGE_TYPES[type_url].FromString(snapshot.resources[type_url][name].body)


def unpack(packed, message_type):
    message = message_type()
    assert packed.Unpack(message), packed.type_url
    return message


def virtual_host(snapshot, name, config="outbound/m1/15001"):
    return next(v for v in get(snapshot, ROUTE, config).virtual_hosts if v.name == name)


def route_named(host, name):
    return next(r for r in host.routes if r.name == name)


# --- clusters ----------------------------------------------------------------------------------------------------


def test_clusters_use_eds_over_ads(full_policy):
    web = get(snapshot_of(full_policy), CLUSTER, "web")
    assert web.type == cluster_pb2.Cluster.EDS
    assert web.eds_cluster_config.eds_config.HasField("ads")
    assert web.eds_cluster_config.eds_config.resource_api_version == config_source_pb2.V3
    assert web.connect_timeout.seconds == 5


def test_round_robin_and_ring_hash_use_the_fields_every_client_reads(full_policy):
    snapshot = snapshot_of(full_policy)
    web, sticky = get(snapshot, CLUSTER, "web"), get(snapshot, CLUSTER, "sticky")
    assert web.lb_policy == cluster_pb2.Cluster.ROUND_ROBIN and not web.HasField("load_balancing_policy")
    assert web.common_lb_config.HasField("locality_weighted_lb_config")
    assert sticky.lb_policy == cluster_pb2.Cluster.RING_HASH
    assert sticky.ring_hash_lb_config.minimum_ring_size.value == 2048


def test_policies_grpc_lacks_fall_back_to_one_it_has(full_policy):
    snapshot = snapshot_of(full_policy)

    def policies(name):
        configs = get(snapshot, CLUSTER, name).load_balancing_policy.policies
        return [p.typed_extension_config.typed_config.type_url.rsplit(".", 1)[-1] for p in configs]

    assert policies("web-canary") == ["LeastRequest", "RoundRobin"]
    assert policies("random") == ["Random", "RoundRobin"]
    assert policies("by-header") == ["Maglev", "RingHash"]
    least = get(snapshot, CLUSTER, "web-canary").load_balancing_policy.policies[0].typed_extension_config.typed_config
    assert unpack(least, least_request_pb2.LeastRequest).locality_lb_config.HasField("locality_weighted_lb_config")
    maglev = get(snapshot, CLUSTER, "by-header").load_balancing_policy.policies
    maglev_config = unpack(maglev[0].typed_extension_config.typed_config, maglev_pb2.Maglev)
    assert maglev_config.HasField("locality_weighted_lb_config")
    assert unpack(maglev[1].typed_extension_config.typed_config, ring_hash_pb2.RingHash).HasField(
        "locality_weighted_lb_config")
    fallback = get(snapshot, CLUSTER, "random").load_balancing_policy.policies[1].typed_extension_config.typed_config
    assert unpack(fallback, round_robin_pb2.RoundRobin).locality_lb_config.HasField("locality_weighted_lb_config")


def test_circuit_breakers_outlier_detection_and_panic_threshold(full_policy):
    web = get(snapshot_of(full_policy), CLUSTER, "web")
    thresholds = web.circuit_breakers.thresholds[0]
    assert (thresholds.priority, thresholds.max_connections.value, thresholds.max_pending_requests.value,
            thresholds.max_requests.value, thresholds.max_retries.value) == (base_pb2.DEFAULT, 100, 10, 1000, 3)
    outlier = web.outlier_detection
    assert (outlier.consecutive_5xx.value, outlier.consecutive_gateway_failure.value, outlier.interval.seconds,
            outlier.base_ejection_time.seconds, outlier.max_ejection_percent.value) == (5, 3, 10, 30, 50)
    assert (outlier.enforcing_consecutive_5xx.value, outlier.enforcing_consecutive_gateway_failure.value,
            outlier.enforcing_success_rate.value) == (100, 100, 90)
    assert (outlier.success_rate_minimum_hosts.value, outlier.success_rate_request_volume.value,
            outlier.success_rate_stdev_factor.value) == (5, 100, 1900)
    # drop_traffic_if_unhealthy: no panic mode.
    assert web.common_lb_config.HasField("healthy_panic_threshold")
    assert web.common_lb_config.healthy_panic_threshold.value == 0
    assert not get(snapshot_of(full_policy), CLUSTER, "web-canary").common_lb_config.HasField("healthy_panic_threshold")


def test_upstream_http_protocol_follows_the_service(full_policy):
    from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2 as options_pb2

    key = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    snapshot = snapshot_of(full_policy)
    web = unpack(get(snapshot, CLUSTER, "web").typed_extension_protocol_options[key], options_pb2.HttpProtocolOptions)
    assert web.explicit_http_config.HasField("http_protocol_options")
    assert web.common_http_protocol_options.max_requests_per_connection.value == 50
    grpc = unpack(get(snapshot, CLUSTER, "grpc-svc").typed_extension_protocol_options[key],
                  options_pb2.HttpProtocolOptions)
    assert grpc.explicit_http_config.HasField("http2_protocol_options")
    assert key not in get(snapshot, CLUSTER, "db").typed_extension_protocol_options
    assert key not in get(snapshot, CLUSTER, "web-canary").typed_extension_protocol_options


def test_a_service_with_host_name_endpoints_is_an_eds_cluster_sent_the_addresses_resolved(full_policy):
    """EDS carries IP addresses only (Envoy and proxyless gRPC refuse a name
    there, and gRPC refuses STRICT_DNS clusters): the replica resolves names
    into the policy, and each address is one endpoint, the name its hostname."""
    assert get(snapshot_of(full_policy), CLUSTER, "partner").type == cluster_pb2.Cluster.EDS
    assert get(snapshot_of(full_policy), ENDPOINT, "partner").endpoints == []  # not resolved (yet): nothing to send
    assert full_policy.hostnames() == {"api.partner.example.com"}
    resolved = full_policy.with_addresses({"api.partner.example.com": ("192.0.2.1", "192.0.2.2")})
    sent = [e for locality in get(snapshot_of(resolved), ENDPOINT, "partner").endpoints
            for e in locality.lb_endpoints]
    assert [(e.endpoint.address.socket_address.address, e.endpoint.address.socket_address.port_value,
             e.endpoint.hostname, e.load_balancing_weight.value) for e in sent] == [
        ("192.0.2.1", 8080, "api.partner.example.com", 1), ("192.0.2.2", 8080, "api.partner.example.com", 1)]
    assert full_policy.with_addresses({"api.partner.example.com": ()}) is full_policy  # as before: the same value


# --- endpoints and locality ----------------------------------------------------------------------------------------


def priorities(assignment):
    return {locality.locality.sub_zone: locality.priority for locality in assignment.endpoints}


def test_own_region_first_then_own_cloud_then_other_clouds(full_policy):
    from_virginia = get(snapshot_of(full_policy, VIRGINIA), ENDPOINT, "web")
    assert priorities(from_virginia) == {"use1a": 0, "use1b": 0, "usw2": 1, "euw1": 2}
    from_belgium = get(snapshot_of(full_policy, BELGIUM), ENDPOINT, "web")
    assert priorities(from_belgium) == {"euw1": 0, "use1a": 1, "use1b": 1, "usw2": 1}


def test_localities_no_backend_is_in_share_one_snapshot(full_policy):
    # Proxies name their locality; however many they invent, the translation
    # keeps a snapshot per locality its own backends tell apart, no more.
    translation = translate(full_policy)
    invented = [ProxyLocality(cloud, f"{cloud}-region-{i}") for cloud in ("aws", "gcp", "mars") for i in range(300)]
    snapshots = {id(translation.snapshot(locality)) for locality in invented}
    assert len(snapshots) == 3  # the own cloud's other regions (aws, gcp), and another cloud (mars)
    assert translation.snapshot(ProxyLocality("aws", "us-east-1", "us-east-1b")) is translation.snapshot(VIRGINIA)
    from_mars = get(translation.snapshot(invented[-1]), ENDPOINT, "web")
    assert priorities(from_mars) == {"use1a": 0, "use1b": 0, "usw2": 0, "euw1": 0}
    from_aws_elsewhere = get(translation.snapshot(invented[0]), ENDPOINT, "web")
    assert priorities(from_aws_elsewhere) == {"use1a": 0, "use1b": 0, "usw2": 0, "euw1": 1}


def test_priorities_have_no_gaps(full_policy):
    # From Oregon, web-canary's only group (Virginia) is the own cloud: priority 0, not 1.
    oregon = snapshot_of(full_policy, ProxyLocality("aws", "us-west-2"))
    assert priorities(get(oregon, ENDPOINT, "web-canary")) == {"use1b": 0}


def test_preferred_backends_come_first_wherever_they_are(full_policy):
    assert priorities(get(snapshot_of(full_policy, VIRGINIA), ENDPOINT, "sticky")) == {"onprem": 0, "use1a": 1}


def test_failover_disabled_keeps_one_priority(full_policy):
    assert priorities(get(snapshot_of(full_policy, VIRGINIA), ENDPOINT, "random")) == {"use1a": 0, "euw1": 0}


def test_locality_weights_follow_capacity_and_ratio_sets_overprovisioning(full_policy):
    web = get(snapshot_of(full_policy), ENDPOINT, "web")
    weights = {locality.locality.sub_zone: locality.load_balancing_weight.value for locality in web.endpoints}
    # use1a: 2 endpoints x 1.0; use1b: 1 endpoint x capacity 0.5.
    assert weights == {"use1a": 10_000, "use1b": 2_500, "usw2": 5_000, "euw1": 5_000}
    assert web.policy.overprovisioning_factor.value == 143  # healthy share 0.7 -> 100 / 0.7
    use1a = next(locality for locality in web.endpoints if locality.locality.sub_zone == "use1a")
    assert (use1a.locality.region, use1a.locality.zone) == ("us-east-1", "us-east-1a")
    assert [e.endpoint.address.socket_address.address for e in use1a.lb_endpoints] == ["10.0.0.1", "10.0.0.2"]
    assert {e.health_status for e in use1a.lb_endpoints} == {health_check_pb2.UNKNOWN}


def test_drained_backend_is_left_out_and_endpoint_weights_and_metadata_pass_through(api, mesh):
    patch(api, "backend-services", "web", {"backends": [{"endpoint_group": "use1a", "capacity_scaler": 0},
                                                         {"endpoint_group": "use1b"}]})
    patch(api, "endpoint-groups", "use1b", {"endpoints": [
        {"address": "10.0.1.1", "port": 8080, "weight": 7, "metadata": {"version": "v2", "canary": True}}]})
    web = get(snapshot_of(stored()), ENDPOINT, "web")
    assert [locality.locality.sub_zone for locality in web.endpoints] == ["use1b"]
    endpoint = web.endpoints[0].lb_endpoints[0]
    assert endpoint.load_balancing_weight.value == 7
    assert dict(endpoint.metadata.filter_metadata["interlock"]) == {"version": "v2", "canary": True}


# --- the outbound listener and its routes ---------------------------------------------------------------------------


def test_outbound_listener_routes_by_host_through_rds(full_policy):
    listener = get(snapshot_of(full_policy), LISTENER, "outbound/m1/15001")
    address = listener.address.socket_address
    assert (address.address, address.port_value) == ("127.0.0.1", 15001)
    manager = unpack(listener.filter_chains[0].filters[0].typed_config, hcm.HttpConnectionManager)
    assert manager.rds.route_config_name == "outbound/m1/15001"
    assert manager.rds.config_source.HasField("ads")
    assert [f.name for f in manager.http_filters] == [
        "envoy.filters.http.fault", "envoy.filters.http.cors", "envoy.filters.http.router"]


def test_one_virtual_host_per_route_with_port_wildcards(full_policy):
    config = get(snapshot_of(full_policy), ROUTE, "outbound/m1/15001")
    assert [v.name for v in config.virtual_hosts] == ["grpc-routes/greeter", "http-routes/web"]
    web = virtual_host(snapshot_of(full_policy), "http-routes/web")
    assert list(web.domains) == ["web.example.com", "web.example.com:*", "*.web.example.com", "web.example.com:8443"]


def test_http_matches(full_policy):
    route = virtual_host(snapshot_of(full_policy), "http-routes/web").routes[0]
    match = route.match
    assert match.prefix == "/api" and match.case_sensitive.value is False
    headers = {h.name: h for h in match.headers}
    assert headers["x-env"].string_match.exact == "canary"
    assert headers["x-tier"].string_match.safe_regex.regex == "gold|silver"
    assert headers["x-p"].string_match.prefix == "a" and headers["x-s"].string_match.suffix == "z"
    assert headers["x-debug"].present_match and headers["x-debug"].invert_match
    assert (headers["x-version"].range_match.start, headers["x-version"].range_match.end) == (1, 10)
    queries = {q.name: q for q in match.query_parameters}
    assert queries["beta"].string_match.exact == "1"
    assert queries["q"].string_match.safe_regex.regex == "[a-z]+"
    assert queries["flag"].present_match
    host = virtual_host(snapshot_of(full_policy), "http-routes/web")
    rules = host.routes
    assert route_named(host, "rules[1].matches[0]").match.path == "/old"
    assert rules[2].match.safe_regex.regex == "/static/[0-9]+"
    assert rules[-1].name == "rules[4].matches[0]" and rules[-1].match.prefix == "/"


def test_weighted_destinations_timeout_retry_rewrite_mirror(full_policy):
    action = virtual_host(snapshot_of(full_policy), "http-routes/web").routes[0].route
    assert [(c.name, c.weight.value) for c in action.weighted_clusters.clusters] == [("web", 90), ("web-canary", 10)]
    assert action.timeout.seconds == 5
    assert action.retry_policy.retry_on == "5xx,reset"
    assert action.retry_policy.num_retries.value == 3
    assert (action.retry_policy.per_try_timeout.seconds, action.retry_policy.per_try_timeout.nanos) == (1, 500_000_000)
    assert action.prefix_rewrite == "/v2/api" and action.host_rewrite_literal == "internal.example.com"
    mirror = action.request_mirror_policies[0]
    assert mirror.cluster == "web-canary" and mirror.runtime_fraction.default_value.numerator == 50_000


def test_fault_injection_and_cors_are_per_route_filter_configs(full_policy):
    route = virtual_host(snapshot_of(full_policy), "http-routes/web").routes[0]
    fault = unpack(route.typed_per_filter_config["envoy.filters.http.fault"], fault_pb2.HTTPFault)
    assert fault.delay.fixed_delay.nanos == 250_000_000 and fault.delay.percentage.numerator == 125_000
    assert fault.abort.http_status == 503 and fault.abort.percentage.numerator == 10_000
    cors = unpack(route.typed_per_filter_config["envoy.filters.http.cors"], cors_pb2.CorsPolicy)
    assert [m.exact or m.safe_regex.regex for m in cors.allow_origin_string_match] == [
        "https://app.example.com", ".*", r"https://.*\.example\.com"]
    assert (cors.allow_methods, cors.allow_headers, cors.expose_headers, cors.max_age) == (
        "GET,POST", "x-token", "x-request-id", "600")
    assert cors.allow_credentials.value is True and not cors.HasField("filter_enabled")
    disabled = unpack(virtual_host(snapshot_of(full_policy), "http-routes/web").routes[-1]
                      .typed_per_filter_config["envoy.filters.http.cors"], cors_pb2.CorsPolicy)
    assert disabled.filter_enabled.default_value.numerator == 0


def test_header_modifiers(full_policy):
    route = virtual_host(snapshot_of(full_policy), "http-routes/web").routes[0]
    added = {(o.header.key, o.header.value, o.append_action, o.keep_empty_value) for o in route.request_headers_to_add}
    assert added == {("x-mesh", "m1", base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD, False),
                     ("x-empty", "", base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD, True),
                     ("x-trace", "on", base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD, False)}
    assert list(route.request_headers_to_remove) == ["x-internal"]
    assert [(o.header.key, o.header.value) for o in route.response_headers_to_add] == [("cache-control", "no-store")]
    assert list(route.response_headers_to_remove) == ["server"]


def test_redirect(full_policy):
    redirect = route_named(virtual_host(snapshot_of(full_policy), "http-routes/web"), "rules[1].matches[0]").redirect
    assert (redirect.host_redirect, redirect.path_redirect, redirect.port_redirect) == ("new.example.com", "/new", 8443)
    assert redirect.response_code == redirect.PERMANENT_REDIRECT
    assert redirect.https_redirect and redirect.strip_query


def test_hash_policies_come_from_the_destinations_and_zero_weights_are_dropped(full_policy):
    host = virtual_host(snapshot_of(full_policy), "http-routes/web")
    for name in ("rules[2].matches[0]", "rules[2].matches[1]"):
        action = route_named(host, name).route
        assert [c.name for c in action.weighted_clusters.clusters] == ["sticky", "by-header"]
        cookie, header = action.hash_policy
        assert (cookie.cookie.name, cookie.cookie.path, cookie.cookie.ttl.seconds) == ("session", "/", 3600)
        assert header.header.header_name == "x-user"
    # Without a timeout of its own a route waits as long as its slowest destination.
    assert route_named(host, "rules[2].matches[0]").route.timeout.seconds == 30
    assert route_named(host, "rules[3].matches[0]").route.cluster == "partner"


def test_generated_cookie_and_client_ip_affinity(api, mesh):
    patch(api, "http-routes", "web", {"rules": [{"action": {"destinations": [{"service_name": "generated"}]}}]})
    cookie = virtual_host(snapshot_of(stored()), "http-routes/web").routes[0].route.hash_policy[0].cookie
    assert cookie.name == "interlock-affinity" and cookie.HasField("ttl") and cookie.ttl.seconds == 0
    chains = get(snapshot_of(stored()), LISTENER, "tcp/m1/6432").filter_chains
    proxy = unpack(chains[0].filters[0].typed_config, tcp_proxy_pb2.TcpProxy)
    assert proxy.hash_policy[0].HasField("source_ip")


def test_default_timeout_is_the_slowest_destination(api, mesh):
    patch(api, "backend-services", "by-header", {"timeout_sec": 45})
    host = virtual_host(snapshot_of(stored()), "http-routes/web")
    assert route_named(host, "rules[2].matches[0]").route.timeout.seconds == 45
    assert route_named(host, "rules[3].matches[0]").route.timeout.seconds == 30


def test_grpc_route_matches(full_policy):
    routes = virtual_host(snapshot_of(full_policy), "grpc-routes/greeter").routes
    exact, any_service, regular = routes[0].match, routes[1].match, routes[2].match
    assert exact.path == "/helloworld.Greeter/SayHello"
    assert {(h.name, h.string_match.exact or h.string_match.safe_regex.regex) for h in exact.headers} == {
        ("x-user", "alice"), ("x-group", "adm.*")}
    assert any_service.safe_regex.regex == "(?i)/[^/]+/Ping"
    assert regular.safe_regex.regex == r"/(?:helloworld\..*)/(?:Say.*)"
    assert routes[0].route.cluster == "grpc-svc" and routes[0].route.timeout.seconds == 2
    assert routes[0].route.retry_policy.retry_on == "unavailable,cancelled"
    # A retry policy without conditions retries what gRPC calls UNAVAILABLE.
    assert routes[3].route.retry_policy.retry_on == "unavailable"
    assert routes[3].route.retry_policy.num_retries.value == 1


# --- proxyless gRPC ------------------------------------------------------------------------------------------------


def test_api_listener_per_hostname_served_only_by_name(full_policy):
    snapshot = snapshot_of(full_policy)
    names = {"web.example.com", "web.example.com:8443", "greeter.example.com", "greeter.example.com:50051"}
    assert names <= set(snapshot.resources[LISTENER])
    assert "*.web.example.com" not in snapshot.resources[LISTENER]
    wildcard = {r.name for r in snapshot.get(LISTENER)}
    assert wildcard == {"outbound/m1/15001", "tcp/m1/5432", "tcp/m1/6432"}
    assert {r.name for r in snapshot.get(LISTENER, ["greeter.example.com"])} == {"greeter.example.com"}
    listener = get(snapshot, LISTENER, "greeter.example.com:50051")
    manager = unpack(listener.api_listener.api_listener, hcm.HttpConnectionManager)
    assert manager.rds.route_config_name == "grpc/m1/grpc-routes/greeter"
    assert manager.rds.config_source.HasField("ads")
    assert [f.name for f in manager.http_filters] == ["envoy.filters.http.fault", "envoy.filters.http.router"]


def test_grpc_route_configurations_hold_only_what_grpc_implements(full_policy):
    snapshot = snapshot_of(full_policy)
    web = get(snapshot, ROUTE, "grpc/m1/http-routes/web").virtual_hosts[0]
    # Query-parameter and redirect rules are left out; the rest keep their names.
    assert [r.name for r in web.routes] == ["rules[2].matches[0]", "rules[2].matches[1]", "rules[3].matches[0]",
                                            "rules[4].matches[0]"]
    for route in web.routes:
        assert set(route.typed_per_filter_config) <= {"envoy.filters.http.fault"}
        assert not route.request_headers_to_add and not route.route.request_mirror_policies
        # No timeout of its own: no deadline, not the destinations' default.
        assert not route.route.HasField("timeout") and not route.route.HasField("max_stream_duration")
    greeter = get(snapshot, ROUTE, "grpc/m1/grpc-routes/greeter").virtual_hosts[0]
    assert greeter.routes[0].route.max_stream_duration.max_stream_duration.seconds == 2
    assert "envoy.filters.http.fault" in greeter.routes[0].typed_per_filter_config


# --- TCP -----------------------------------------------------------------------------------------------------------


def test_tcp_routes_get_a_listener_per_port_and_a_chain_per_cidr(full_policy):
    snapshot = snapshot_of(full_policy)
    listener = get(snapshot, LISTENER, "tcp/m1/5432")
    assert (listener.address.socket_address.address, listener.address.socket_address.port_value) == ("127.0.0.1", 5432)
    assert [f.name for f in listener.listener_filters] == ["envoy.filters.listener.original_dst"]
    cidr, everything = listener.filter_chains
    assert [(r.address_prefix, r.prefix_len.value) for r in cidr.filter_chain_match.prefix_ranges] == [("10.9.0.0", 16)]
    assert unpack(cidr.filters[0].typed_config, tcp_proxy_pb2.TcpProxy).cluster == "db"
    assert not everything.filter_chain_match.prefix_ranges
    split = unpack(everything.filters[0].typed_config, tcp_proxy_pb2.TcpProxy)
    assert [(c.name, c.weight) for c in split.weighted_clusters.clusters] == [("db", 3), ("db-replica", 1)]
    assert not get(snapshot, LISTENER, "tcp/m1/6432").listener_filters


def test_interception_port_names_the_listener(api, mesh):
    patch(api, "meshes", "m1", {"interception_port": 15006})
    snapshot = snapshot_of(stored())
    assert "outbound/m1/15006" in snapshot.resources[LISTENER]
    assert "outbound/m1/15001" not in snapshot.resources[LISTENER]
    assert get(snapshot, LISTENER, "outbound/m1/15006").address.socket_address.port_value == 15006
    assert "outbound/m1/15006" in snapshot.resources[ROUTE]


def test_endpoint_health_reaches_envoy(full_policy):
    """Workers will record verdicts on endpoints; translation passes them on."""
    web = next(s for s in full_policy.services if s.name == "web")
    first = web.backends[0]
    sick = first._replace(endpoints=(first.endpoints[0]._replace(health="UNHEALTHY"), *first.endpoints[1:]))
    changed = replace(full_policy, services=tuple(
        s._replace(backends=(sick, *web.backends[1:])) if s is web else s for s in full_policy.services))
    web_endpoints = get(snapshot_of(changed), ENDPOINT, "web").endpoints
    use1a = next(loc for loc in web_endpoints if loc.locality.sub_zone == "use1a")
    assert [e.health_status for e in use1a.lb_endpoints] == [health_check_pb2.UNHEALTHY, health_check_pb2.UNKNOWN]


def test_outbound_route_configuration_bytes_are_protobufs_own(full_policy):
    """The outbound configuration is assembled from virtual hosts serialized
    once each; it must be byte for byte what protobuf would write."""
    resource = translate(full_policy).snapshot(VIRGINIA).resources[ROUTE]["outbound/m1/15001"]
    decoded = route_pb2.RouteConfiguration.FromString(resource.body)
    assert len(decoded.virtual_hosts) == 2
    assert decoded.SerializeToString(deterministic=True) == resource.body
    long_name = routes.route_configuration_bytes("x" * 300, [b"\x0a\x01a"] * 3)
    assert long_name == route_pb2.RouteConfiguration(
        name="x" * 300, virtual_hosts=[route_components_pb2.VirtualHost(name="a")] * 3).SerializeToString()
