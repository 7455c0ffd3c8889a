"""Snapshots built by hand from xds-protos messages, for tests of the cache and
the stream server that do not depend on translation."""
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2

from service.xds.snapshot import Resource, Snapshot


def cluster(name: str, timeout: int = 5) -> Resource:
    message = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.EDS)
    message.connect_timeout.seconds = timeout
    return Resource.of(message)


def endpoints(name: str, *ports: int) -> Resource:
    message = endpoint_pb2.ClusterLoadAssignment(cluster_name=name)
    group = message.endpoints.add()
    for port in ports:
        address = group.lb_endpoints.add().endpoint.address.socket_address
        address.address, address.port_value = "127.0.0.1", port
    return Resource.of(message)


def listener(name: str, port: int = 15001, wildcard: bool = True) -> Resource:
    message = listener_pb2.Listener(name=name)
    message.address.socket_address.address = "0.0.0.0"
    message.address.socket_address.port_value = port
    return Resource.of(message, wildcard=wildcard)


def routes(name: str, host: str = "*") -> Resource:
    message = route_pb2.RouteConfiguration(name=name)
    message.virtual_hosts.add(name=host, domains=[host])
    return Resource.of(message)


def mesh_snapshot(tag: str = "a", port: int = 8080) -> Snapshot:
    """A small consistent mesh: one service, its endpoints, a listener and its routes,
    plus an API listener that only gRPC clients ask for by name."""
    return Snapshot.of([
        cluster(f"{tag}-svc"),
        endpoints(f"{tag}-svc", port),
        listener(f"{tag}-outbound"),
        listener(f"xds:///{tag}.example", wildcard=False),
        routes(f"{tag}-routes"),
    ])
