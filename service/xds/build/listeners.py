"""Listeners: the sidecar's outbound HTTP listener, its TCP listeners, and
proxyless gRPC clients' API listeners.

Sidecar listeners bind 127.0.0.1: a sidecar serves the applications of its own
host (directly, or through an iptables REDIRECT, which delivers to 127.0.0.1),
and an outbound proxy open to the network would lend anyone the mesh's routes.
"""
from __future__ import annotations

import ipaddress

from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.listener.v3 import api_listener_pb2, listener_components_pb2, listener_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.listener.original_dst.v3 import original_dst_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.type.v3 import hash_policy_pb2

from service.xds.build.common import (
    ADS, CORS_FILTER, FAULT_FILTER, ROUTER_FILTER, cluster_name, outbound_name, packed, tcp_listener_name, uint32,
)
from service.xds.build.routes import hash_policies
from service.xds.policy import ServicePolicy

LISTEN_ADDRESS = "127.0.0.1"
HCM_FILTER = "envoy.filters.network.http_connection_manager"
TCP_PROXY_FILTER = "envoy.filters.network.tcp_proxy"
ORIGINAL_DST_FILTER = "envoy.filters.listener.original_dst"
# CIDRs that match every destination: no prefix_ranges at all.
MATCH_ALL = ("0.0.0.0/0", "::/0")


def _http_filter(name: str, config) -> hcm.HttpFilter:
    return hcm.HttpFilter(name=name, typed_config=packed(config))


# The fault and CORS filters act only on routes that configure them
# (typed_per_filter_config); gRPC implements fault injection but not CORS.
SIDECAR_HTTP_FILTERS = (
    _http_filter(FAULT_FILTER, fault_pb2.HTTPFault()),
    _http_filter(CORS_FILTER, cors_pb2.Cors()),
    _http_filter(ROUTER_FILTER, router_pb2.Router()),
)
GRPC_HTTP_FILTERS = (
    _http_filter(FAULT_FILTER, fault_pb2.HTTPFault()),
    _http_filter(ROUTER_FILTER, router_pb2.Router()),
)


def _connection_manager(stat_prefix: str, route_config: str, filters) -> hcm.HttpConnectionManager:
    return hcm.HttpConnectionManager(
        stat_prefix=stat_prefix,
        codec_type=hcm.HttpConnectionManager.AUTO,
        rds=hcm.Rds(config_source=ADS, route_config_name=route_config),
        http_filters=filters,
    )


def _socket(port: int) -> address_pb2.Address:
    return address_pb2.Address(socket_address=address_pb2.SocketAddress(address=LISTEN_ADDRESS, port_value=port))


def outbound_listener(mesh: str, port: int) -> listener_pb2.Listener:
    """HTTP on the interception port, routed by Host through the route
    configuration of the same name."""
    name = outbound_name(mesh, port)
    manager = _connection_manager("outbound", name, SIDECAR_HTTP_FILTERS)
    return listener_pb2.Listener(
        name=name,
        address=_socket(port),
        traffic_direction=base_pb2.OUTBOUND,
        filter_chains=[listener_components_pb2.FilterChain(
            filters=[listener_components_pb2.Filter(name=HCM_FILTER, typed_config=packed(manager))])],
    )


def api_listener(hostname: str, route_config: str) -> listener_pb2.Listener:
    """What a gRPC client dialling ``xds:///<hostname>`` asks LDS for."""
    manager = _connection_manager(hostname, route_config, GRPC_HTTP_FILTERS)
    return listener_pb2.Listener(name=hostname, api_listener=api_listener_pb2.ApiListener(api_listener=packed(manager)))


def tcp_listener(mesh: str, port: int, chains, services: dict[str, ServicePolicy]) -> listener_pb2.Listener:
    """One listener per port; ``chains`` are (CIDR, destinations) in rule
    order, and the first rule to claim a CIDR keeps it."""
    name = tcp_listener_name(mesh, port)
    filter_chains, seen = [], set()
    for cidr, destinations in chains:
        everything = cidr in MATCH_ALL
        key = None if everything else cidr
        if key in seen:
            continue
        seen.add(key)
        match = listener_components_pb2.FilterChainMatch()
        if not everything:
            network = ipaddress.ip_network(cidr)
            match.prefix_ranges.add(address_prefix=str(network.network_address), prefix_len=uint32(network.prefixlen))
        proxy = _tcp_proxy(f"tcp_{port}", destinations, services)
        filter_chains.append(listener_components_pb2.FilterChain(
            filter_chain_match=match,
            filters=[listener_components_pb2.Filter(name=TCP_PROXY_FILTER, typed_config=packed(proxy))]))
    message = listener_pb2.Listener(
        name=name, address=_socket(port), traffic_direction=base_pb2.OUTBOUND, filter_chains=filter_chains)
    if any(key is not None for key in seen):
        # Matching on the destination address means the address the client
        # dialled, which an iptables redirect hides: this restores it.
        message.listener_filters.add(name=ORIGINAL_DST_FILTER, typed_config=packed(original_dst_pb2.OriginalDst()))
    return message


def _tcp_proxy(stat_prefix: str, destinations, services) -> tcp_proxy_pb2.TcpProxy:
    # TcpProxy weights must be >= 1; a weight of 0 sends nothing anyway.
    destinations = [d for d in destinations if d["weight"] > 0]
    message = tcp_proxy_pb2.TcpProxy(stat_prefix=stat_prefix)
    if len(destinations) == 1:
        message.cluster = cluster_name(destinations[0]["service_name"])
    else:
        weight = tcp_proxy_pb2.TcpProxy.WeightedCluster.ClusterWeight
        message.weighted_clusters.clusters.extend(
            weight(name=cluster_name(d["service_name"]), weight=d["weight"]) for d in destinations)
    # Of a service's hash policies, TCP can honour the client's address only.
    if any(policy.connection_properties.source_ip
           for d in destinations if d["service_name"] in services
           for policy in hash_policies(services[d["service_name"]])):
        message.hash_policy.add(source_ip=hash_policy_pb2.HashPolicy.SourceIp())
    return message
