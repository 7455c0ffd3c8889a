"""Small pieces every builder uses: names, durations, percentages, the ADS
config source."""
from __future__ import annotations

from envoy.config.core.v3 import config_source_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import any_pb2, duration_pb2, wrappers_pb2
from google.protobuf.message import Message

UINT32_MAX = 2**32 - 1

# Resources reach proxies over the ADS stream they opened (Envoy sidecars and
# proxyless gRPC alike), never over a second connection.
ADS = config_source_pb2.ConfigSource(
    ads=config_source_pb2.AggregatedConfigSource(), resource_api_version=config_source_pb2.V3
)


# --- names -------------------------------------------------------------------------------------------------------
# Policy names are RFC 1035 labels and hostnames are DNS names, so a name with
# a '/' can be neither: listener and route configuration names below never
# collide with a proxyless client's target, nor with each other.


def cluster_name(service: str) -> str:
    """A cluster (and its ClusterLoadAssignment) is named after its backend service."""
    return service


def outbound_name(mesh: str, port: int) -> str:
    """The sidecar's outbound HTTP listener and its route configuration."""
    return f"outbound/{mesh}/{port}"


def tcp_listener_name(mesh: str, port: int) -> str:
    return f"tcp/{mesh}/{port}"


def grpc_route_config_name(mesh: str, kind: str, route: str) -> str:
    """The route configuration of a proxyless client's API listeners: one per
    route, so that a change to one route reaches only its clients."""
    return f"grpc/{mesh}/{kind}/{route}"


def virtual_host_name(kind: str, route: str) -> str:
    return f"{kind}/{route}"


# --- values ------------------------------------------------------------------------------------------------------


def packed(message: Message) -> any_pb2.Any:
    wrapped = any_pb2.Any()
    wrapped.Pack(message)
    return wrapped


def duration(seconds: float) -> duration_pb2.Duration:
    # The API keeps durations to the millisecond; so does Envoy.
    millis = round(seconds * 1000)
    return duration_pb2.Duration(seconds=millis // 1000, nanos=(millis % 1000) * 1_000_000)


def uint32(value: float) -> wrappers_pb2.UInt32Value:
    return wrappers_pb2.UInt32Value(value=int(round(value)))


def fraction(percent: float) -> percent_pb2.FractionalPercent:
    """A 0..100 percentage at Envoy's finest denominator (one in a million)."""
    return percent_pb2.FractionalPercent(
        numerator=int(round(percent * 10_000)), denominator=percent_pb2.FractionalPercent.MILLION
    )


def exact(value: str) -> string_pb2.StringMatcher:
    return string_pb2.StringMatcher(exact=value)


def regex(pattern: str, ignore_case: bool = False) -> regex_pb2.RegexMatcher:
    # RE2's inline flag: RegexMatcher has no case option of its own.
    return regex_pb2.RegexMatcher(regex=f"(?i){pattern}" if ignore_case else pattern)


def regex_string(pattern: str) -> string_pb2.StringMatcher:
    return string_pb2.StringMatcher(safe_regex=regex(pattern))


# --- HTTP filters ---------------------------------------------------------------------------------------------
# Route-level settings of these filters go in Route.typed_per_filter_config
# under the same names; the router is always last.
FAULT_FILTER = "envoy.filters.http.fault"
CORS_FILTER = "envoy.filters.http.cors"
ROUTER_FILTER = "envoy.filters.http.router"
