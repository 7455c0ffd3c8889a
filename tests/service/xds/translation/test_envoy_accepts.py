"""The real Envoy accepts what translation produces: a full-featured mesh's
snapshot, made one static bootstrap (clusters as served, each
ClusterLoadAssignment inlined in a static copy of its cluster, listeners with
their route configuration inlined, API listeners turned into ordinary
listeners so their gRPC route configurations are checked too), passes
`envoy --mode validate`; the same with one deliberate error fails."""
import subprocess
from pathlib import Path

import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import config_source_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from google.protobuf import json_format

from service.xds.build.listeners import HCM_FILTER
from service.xds.snapshot import CLUSTER, ENDPOINT, LISTENER, ROUTE
from service.xds.translate import ProxyLocality, translate

ENVOY = Path(__file__).resolve().parents[4] / ".venv" / "bin" / "envoy"
pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def decoded(snapshot, type_url, message_type):
    return {name: message_type.FromString(r.body) for name, r in snapshot.resources[type_url].items()}


def static_bootstrap(snapshot) -> bootstrap_pb2.Bootstrap:
    """The snapshot as one static bootstrap. Clusters stay as served (EDS
    over ADS, so the bootstrap names an ADS server that validation never
    dials); each ClusterLoadAssignment is checked as the load_assignment of a
    STATIC copy of its cluster, `eds/<name>`."""
    route_configs = decoded(snapshot, ROUTE, route_pb2.RouteConfiguration)
    bootstrap = bootstrap_pb2.Bootstrap()
    bootstrap.node.id, bootstrap.node.cluster = "tenants/acme/meshes/m1/nodes/validate", "m1"
    ads = bootstrap.dynamic_resources.ads_config
    ads.api_type, ads.transport_api_version = config_source_pb2.ApiConfigSource.GRPC, config_source_pb2.V3
    ads.grpc_services.add().envoy_grpc.cluster_name = "interlock_xds"
    bootstrap.static_resources.clusters.append(static_cluster("interlock_xds", endpoint_pb2.ClusterLoadAssignment(
        endpoints=[{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1",
                                                                                   "port_value": 1}}}}]}])))
    bootstrap.static_resources.clusters.extend(decoded(snapshot, CLUSTER, cluster_pb2.Cluster).values())
    for name, assignment in decoded(snapshot, ENDPOINT, endpoint_pb2.ClusterLoadAssignment).items():
        bootstrap.static_resources.clusters.append(static_cluster(f"eds/{name}", assignment))
    spare_ports = iter(range(20000, 30000))
    for listener in decoded(snapshot, LISTENER, listener_pb2.Listener).values():
        if listener.HasField("api_listener"):
            listener = as_ordinary_listener(listener, next(spare_ports))
        for chain in listener.filter_chains:
            for network_filter in chain.filters:
                if network_filter.name == HCM_FILTER:
                    network_filter.typed_config.Pack(inline_routes(network_filter.typed_config, route_configs))
        bootstrap.static_resources.listeners.append(listener)
    return bootstrap


def static_cluster(name, assignment):
    cluster = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.STATIC, load_assignment=assignment)
    cluster.connect_timeout.seconds = 1
    cluster.load_assignment.cluster_name = name
    return cluster


def as_ordinary_listener(listener, port):
    ordinary = listener_pb2.Listener(name=listener.name)
    ordinary.address.socket_address.address, ordinary.address.socket_address.port_value = "127.0.0.1", port
    ordinary.filter_chains.add().filters.add(name=HCM_FILTER, typed_config=listener.api_listener.api_listener)
    return ordinary


def inline_routes(packed, route_configs):
    manager = hcm.HttpConnectionManager()
    packed.Unpack(manager)
    manager.route_config.CopyFrom(route_configs[manager.rds.route_config_name])
    return manager


def envoy_validate(bootstrap, tmp_path) -> subprocess.CompletedProcess:
    path = tmp_path / "envoy.json"
    path.write_text(json_format.MessageToJson(bootstrap))
    return subprocess.run([str(ENVOY), "--mode", "validate", "-c", str(path), "-l", "warning"],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def snapshot(full_policy):
    resolved = full_policy.with_addresses({"api.partner.example.com": ("192.0.2.1", "2001:db8::1")})
    return translate(resolved).snapshot(ProxyLocality("aws", "us-east-1", "us-east-1a"))


def test_envoy_accepts_a_full_featured_translation(snapshot, tmp_path):
    bootstrap = static_bootstrap(snapshot)
    # Every kind of resource is in it, including API listeners and the
    # endpoints of a host name, resolved (every cluster is EDS).
    assert {c.type for c in bootstrap.static_resources.clusters} == {cluster_pb2.Cluster.EDS, cluster_pb2.Cluster.STATIC}
    assert {"eds/web", "eds/partner"} <= {c.name for c in bootstrap.static_resources.clusters}
    assert {"outbound/m1/15001", "tcp/m1/5432", "greeter.example.com"} <= {
        listener.name for listener in bootstrap.static_resources.listeners}
    result = envoy_validate(bootstrap, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout
    # Nothing deprecated or ignored either: Envoy warns about both.
    assert "warning" not in result.stdout + result.stderr, result.stdout + result.stderr


def test_envoy_refuses_a_broken_one(snapshot, tmp_path):
    bootstrap = static_bootstrap(snapshot)
    outbound = next(l for l in bootstrap.static_resources.listeners if l.name == "outbound/m1/15001")
    manager = hcm.HttpConnectionManager()
    outbound.filter_chains[0].filters[0].typed_config.Unpack(manager)
    manager.route_config.virtual_hosts[0].routes[0].match.safe_regex.regex = "(unclosed"
    outbound.filter_chains[0].filters[0].typed_config.Pack(manager)
    result = envoy_validate(bootstrap, tmp_path)
    assert result.returncode != 0
    assert "unclosed" in result.stdout + result.stderr or "missing )" in result.stdout + result.stderr
