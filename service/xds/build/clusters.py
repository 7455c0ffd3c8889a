"""Backend service -> Cluster.

Clusters take their endpoints from EDS over ADS, also for a service with
host-name endpoints: the replica resolves them and EDS sends the addresses
(``service/xds/resolve.py``), since proxyless gRPC refuses STRICT_DNS clusters
and nobody accepts a name in EDS. One Cluster serves Envoy and
proxyless gRPC alike, so the load-balancing policy is said in a way both
understand (see :func:`set_load_balancing`); localities are always weighted.
"""
from __future__ import annotations

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2, outlier_detection_pb2
from envoy.config.core.v3 import base_pb2, extension_pb2, protocol_pb2
from envoy.extensions.load_balancing_policies.common.v3 import common_pb2 as lb_common_pb2
from envoy.extensions.load_balancing_policies.least_request.v3 import least_request_pb2
from envoy.extensions.load_balancing_policies.maglev.v3 import maglev_pb2
from envoy.extensions.load_balancing_policies.random.v3 import random_pb2
from envoy.extensions.load_balancing_policies.ring_hash.v3 import ring_hash_pb2
from envoy.extensions.load_balancing_policies.round_robin.v3 import round_robin_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.v3 import percent_pb2

from service.xds.build.common import ADS, cluster_name, duration, packed, uint32
from service.xds.policy import ServicePolicy

CONNECT_TIMEOUT_SEC = 5
HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
HTTP2_PROTOCOLS = ("HTTP2", "GRPC")


def cluster(service: ServicePolicy) -> cluster_pb2.Cluster:
    """The service's Cluster: EDS over ADS."""
    message = cluster_pb2.Cluster(
        name=cluster_name(service.name),
        connect_timeout=duration(CONNECT_TIMEOUT_SEC),
        type=cluster_pb2.Cluster.EDS,
    )
    set_load_balancing(message, service)
    message.eds_cluster_config.eds_config.CopyFrom(ADS)
    if service.circuit_breakers:
        message.circuit_breakers.CopyFrom(circuit_breakers(service.circuit_breakers))
    if service.outlier_detection:
        message.outlier_detection.CopyFrom(outlier_detection(service.outlier_detection))
    if (service.failover or {}).get("drop_traffic_if_unhealthy"):
        # Envoy's panic mode sends to every endpoint once too few are
        # healthy; a threshold of 0 turns it off, so traffic is dropped.
        message.common_lb_config.healthy_panic_threshold.CopyFrom(percent_pb2.Percent(value=0))
    options = http_protocol_options(service)
    if options is not None:
        message.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(packed(options))
    return message


def set_load_balancing(message: cluster_pb2.Cluster, service: ServicePolicy):
    """ROUND_ROBIN and RING_HASH use the classic fields, which Envoy and every
    gRPC read in full (gRPC then weights localities too). The others use
    ``load_balancing_policy`` with a fallback gRPC has: gRPC takes the first
    policy it knows (LEAST_REQUEST exists in some gRPC languages only)."""
    policy = service.locality_lb_policy
    if policy == "ROUND_ROBIN":
        message.lb_policy = cluster_pb2.Cluster.ROUND_ROBIN
        message.common_lb_config.locality_weighted_lb_config.SetInParent()
    elif policy == "RING_HASH":
        message.lb_policy = cluster_pb2.Cluster.RING_HASH
        message.common_lb_config.locality_weighted_lb_config.SetInParent()
        minimum = (service.consistent_hash or {}).get("minimum_ring_size")
        if minimum is not None:
            message.ring_hash_lb_config.minimum_ring_size.value = minimum
    else:
        message.load_balancing_policy.CopyFrom(_policies(*_FALLBACKS[policy](service)))


def _ring_hash(service: ServicePolicy) -> ring_hash_pb2.RingHash:
    config = ring_hash_pb2.RingHash(locality_weighted_lb_config=_LOCALITY_WEIGHTED)
    minimum = (service.consistent_hash or {}).get("minimum_ring_size")
    if minimum is not None:
        config.minimum_ring_size.value = minimum
    return config


_LOCALITY_WEIGHTED = lb_common_pb2.LocalityLbConfig.LocalityWeightedLbConfig()
_WEIGHTED_LOCALITIES = lb_common_pb2.LocalityLbConfig(locality_weighted_lb_config=_LOCALITY_WEIGHTED)
_FALLBACKS = {
    "LEAST_REQUEST": lambda service: (least_request_pb2.LeastRequest(locality_lb_config=_WEIGHTED_LOCALITIES),
                                      round_robin_pb2.RoundRobin(locality_lb_config=_WEIGHTED_LOCALITIES)),
    "RANDOM": lambda service: (random_pb2.Random(locality_lb_config=_WEIGHTED_LOCALITIES),
                               round_robin_pb2.RoundRobin(locality_lb_config=_WEIGHTED_LOCALITIES)),
    "MAGLEV": lambda service: (maglev_pb2.Maglev(locality_weighted_lb_config=_LOCALITY_WEIGHTED), _ring_hash(service)),
}


def _policies(*configs) -> cluster_pb2.LoadBalancingPolicy:
    return cluster_pb2.LoadBalancingPolicy(policies=[
        cluster_pb2.LoadBalancingPolicy.Policy(typed_extension_config=extension_pb2.TypedExtensionConfig(
            name=config.DESCRIPTOR.full_name, typed_config=packed(config)))
        for config in configs
    ])


def circuit_breakers(config) -> circuit_breaker_pb2.CircuitBreakers:
    thresholds = circuit_breaker_pb2.CircuitBreakers.Thresholds(priority=base_pb2.DEFAULT)
    for key in ("max_connections", "max_pending_requests", "max_requests", "max_retries"):
        if key in config:
            getattr(thresholds, key).CopyFrom(uint32(config[key]))
    return circuit_breaker_pb2.CircuitBreakers(thresholds=[thresholds])


# API field -> Envoy field, for the ones whose names differ.
_OUTLIER_FIELDS = {
    "consecutive_errors": "consecutive_5xx",
    "consecutive_gateway_failure": "consecutive_gateway_failure",
    "max_ejection_percent": "max_ejection_percent",
    "enforcing_consecutive_errors": "enforcing_consecutive_5xx",
    "enforcing_consecutive_gateway_failure": "enforcing_consecutive_gateway_failure",
    "enforcing_success_rate": "enforcing_success_rate",
    "success_rate_minimum_hosts": "success_rate_minimum_hosts",
    "success_rate_request_volume": "success_rate_request_volume",
    "success_rate_stdev_factor": "success_rate_stdev_factor",
}


def outlier_detection(config) -> outlier_detection_pb2.OutlierDetection:
    message = outlier_detection_pb2.OutlierDetection()
    for key, envoy_field in _OUTLIER_FIELDS.items():
        if key in config:
            getattr(message, envoy_field).CopyFrom(uint32(config[key]))
    if "interval_sec" in config:
        message.interval.CopyFrom(duration(config["interval_sec"]))
    if "base_ejection_time_sec" in config:
        message.base_ejection_time.CopyFrom(duration(config["base_ejection_time_sec"]))
    return message


def http_protocol_options(service: ServicePolicy) -> http_protocol_options_pb2.HttpProtocolOptions | None:
    """HTTP/2 upstream for HTTP2 and gRPC services; per-connection request
    limits for any HTTP service. None when Envoy's defaults do."""
    limit = (service.circuit_breakers or {}).get("max_requests_per_connection")
    if service.protocol == "TCP" or (service.protocol not in HTTP2_PROTOCOLS and limit is None):
        return None
    options = http_protocol_options_pb2.HttpProtocolOptions()
    if service.protocol in HTTP2_PROTOCOLS:
        options.explicit_http_config.http2_protocol_options.CopyFrom(protocol_pb2.Http2ProtocolOptions())
    else:
        options.explicit_http_config.http_protocol_options.CopyFrom(protocol_pb2.Http1ProtocolOptions())
    if limit is not None:
        options.common_http_protocol_options.max_requests_per_connection.CopyFrom(uint32(limit))
    return options
