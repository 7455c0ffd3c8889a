"""Backend service, seen from one proxy locality -> ClusterLoadAssignment.

Each backend (an endpoint group) is one locality: region and zone as the
group states them, and ``sub_zone`` the group's name, so two groups in one
zone stay apart and load reports (LRS) name the group they measured.

Priorities (0 is used first; Envoy and gRPC move to the next one as a
priority runs out of healthy endpoints):

1. PREFERRED backends come before DEFAULT ones, wherever they are;
2. with failover mode REGION_THEN_CLOUD (the default), within each of those:
   groups in the proxy's own cloud and region, then the other regions of its
   cloud, then other clouds. Mode DISABLED puts every locality at one priority.

Only the tiers that have endpoints are used, numbered from 0 without gaps, so
with no PREFERRED backends the proxy's own region is priority 0.

Within a priority, localities are weighted by capacity: the sum of their
endpoints' weights times the backend's and the group's capacity scalers,
scaled so the largest is 10,000. A backend with capacity 0 is drained (left
out). ``failover_ratio`` (the share of healthy endpoints below which a
priority spills into the next) sets Envoy's overprovisioning factor.

Each endpoint carries its health (``health_status``): the verdict of the
service's health check, UNKNOWN where there is none. When every endpoint the
service serves from is UNHEALTHY it fails open (``service/health/failopen.py``):
all are sent as UNKNOWN, as without a health check, so Envoy and proxyless
gRPC (which has no panic mode) still route to them.

An endpoint given by host name is sent as the addresses the replica resolved
it to (``service/xds/resolve.py``), one LbEndpoint each with the endpoint's
weight, health and metadata and the name in ``Endpoint.hostname``; a name not
resolved (yet) is left out. EDS carries IP addresses only, for Envoy and
proxyless gRPC alike.
"""
from __future__ import annotations

from envoy.config.core.v3 import address_pb2, base_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from google.protobuf import struct_pb2

from service.xds.build.common import cluster_name, uint32
from service.xds.policy import UNKNOWN, BackendPolicy, ServicePolicy, thaw

MAX_LOCALITY_WEIGHT = 10_000
# Envoy's factor is a percentage: spill starts when healthy share x factor
# / 100 drops below 1. A ratio of 0 means "never spill while any is healthy".
MAX_OVERPROVISIONING = 1_000_000
METADATA_NAMESPACE = "interlock"


def tier(backend: BackendPolicy, cloud: str | None, region: str | None, waterfall: bool) -> tuple[int, int]:
    preference = 0 if backend.preference == "PREFERRED" else 1
    if not waterfall:
        return preference, 0
    here = backend.locality
    if here.cloud == cloud and here.region == region:
        return preference, 0
    return preference, 1 if here.cloud == cloud else 2


def load_assignment(service: ServicePolicy, cloud: str | None, region: str | None) -> endpoint_pb2.ClusterLoadAssignment:
    failover = service.failover or {}
    waterfall = failover.get("mode", "REGION_THEN_CLOUD") != "DISABLED"
    serving = [b for b in service.backends if b.capacity > 0 and any(e.addresses for e in b.endpoints)]
    tiers = {id(b): tier(b, cloud, region, waterfall) for b in serving}
    priority_of = {t: p for p, t in enumerate(sorted(set(tiers.values())))}
    weights = _locality_weights(serving)
    localities = sorted(
        (priority_of[tiers[id(b)]], position, b) for position, b in enumerate(serving)
    )
    open_ = service.fails_open
    message = endpoint_pb2.ClusterLoadAssignment(
        cluster_name=cluster_name(service.name),
        endpoints=[_locality(b, priority, weights[id(b)], open_) for priority, _, b in localities],
    )
    if "failover_ratio" in failover:
        ratio = failover["failover_ratio"]
        factor = MAX_OVERPROVISIONING if ratio <= 0 else min(MAX_OVERPROVISIONING, round(100 / ratio))
        message.policy.overprovisioning_factor.CopyFrom(uint32(factor))
    return message


def _locality_weights(backends: list[BackendPolicy]) -> dict[int, int]:
    raw = {id(b): sum(e.weight * len(e.addresses) for e in b.endpoints) * b.capacity for b in backends}
    top = max(raw.values(), default=1)
    return {key: max(1, round(value / top * MAX_LOCALITY_WEIGHT)) for key, value in raw.items()}


def _locality(backend: BackendPolicy, priority: int, weight: int,
              fails_open: bool) -> endpoint_components_pb2.LocalityLbEndpoints:
    return endpoint_components_pb2.LocalityLbEndpoints(
        locality=base_pb2.Locality(region=backend.locality.region, zone=backend.locality.zone, sub_zone=backend.group),
        lb_endpoints=[_endpoint(e, address, UNKNOWN if fails_open else e.health)
                      for e in backend.endpoints for address in e.addresses],
        load_balancing_weight=uint32(weight),
        priority=priority,
    )


def _endpoint(endpoint, address: str, health: str) -> endpoint_components_pb2.LbEndpoint:
    message = endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(address=address_pb2.Address(
            socket_address=address_pb2.SocketAddress(address=address, port_value=endpoint.port))),
        health_status=health_check_pb2.HealthStatus.Value(health),
        load_balancing_weight=uint32(endpoint.weight),
    )
    if address != endpoint.address:
        message.endpoint.hostname = endpoint.address  # the name it was resolved from
    if endpoint.metadata:
        metadata = struct_pb2.Struct()
        metadata.update(thaw(endpoint.metadata))
        message.metadata.filter_metadata[METADATA_NAMESPACE].CopyFrom(metadata)
    return message
