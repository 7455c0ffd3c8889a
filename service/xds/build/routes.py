"""HTTP and gRPC routes -> VirtualHosts and RouteConfigurations.

One route is one virtual host whose domains are the route's hostnames; a
hostname without a port also gets ``<hostname>:*``, because Envoy matches the
whole Host header and a client calling ``http://foo.example.com:8080/`` sends
the port along. Each match of each rule is one Envoy route, in rule order (the
first that matches wins); a rule without matches matches every request.

The same builder serves proxyless gRPC clients (``for_grpc=True``), leaving
out what gRPC does not implement, so nothing in what it receives is ignored
silently or NACKed: redirect rules (gRPC accepts only forwarding actions),
matches on query parameters (gRPC would skip such a route anyway), CORS,
header modifiers, URL rewrites and mirroring. A route's own timeout reaches
gRPC as ``max_stream_duration``, the field gRPC reads (gRFC A31); the
destinations' default timeout does not, as with Traffic Director's proxyless
services, since it would end every long-lived stream.

A route's hash policy comes from its destinations' session affinity or
consistent hash: the affinity when it is not NONE, else the hash block.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.common.fault.v3 import fault_pb2 as common_fault_pb2
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.type.v3 import range_pb2
from google.protobuf import wrappers_pb2

from service.xds.build.common import (
    CORS_FILTER, FAULT_FILTER, cluster_name, duration, exact, fraction, packed, regex, regex_string, uint32,
    virtual_host_name,
)
from service.xds.policy import EMPTY, RoutePolicy, ServicePolicy

# What a sidecar route waits for when neither it nor its destinations say (the
# API's default backend service timeout).
DEFAULT_TIMEOUT_SEC = 30.0
DEFAULT_RETRY_ON = {"http": "5xx", "grpc": "unavailable"}
GENERATED_COOKIE = "interlock-affinity"


def domains(hostnames) -> list[str]:
    found = []
    for hostname in hostnames:
        found.append(hostname)
        if "*" not in hostname and ":" not in hostname:
            found.append(f"{hostname}:*")
    return found


def referenced_services(route: RoutePolicy) -> set[str]:
    """Every backend service the route's rules name (destinations, mirrors)."""
    names = set()
    for rule in route.rules:
        action = rule["action"]
        names.update(d["service_name"] for d in action.get("destinations", ()))
        if "request_mirror_policy" in action:
            names.add(action["request_mirror_policy"]["destination"]["service_name"])
    return names


def route_configuration(name: str, virtual_hosts) -> route_pb2.RouteConfiguration:
    return route_pb2.RouteConfiguration(name=name, virtual_hosts=virtual_hosts)


def route_configuration_bytes(name: str, virtual_hosts: list[bytes]) -> bytes:
    """``route_configuration(name, hosts).SerializeToString(deterministic=True)``,
    assembled from virtual hosts serialized earlier: a mesh's outbound
    configuration holds every route, and re-serializing all of them for a
    change to one costs ten times more. Deterministic serialization writes
    fields in number order, and these are the only two fields set: name (1),
    then each virtual host (2) as a length-delimited record."""
    parts = [_field(1, name.encode())]
    parts.extend(_field(2, body) for body in virtual_hosts)
    return b"".join(parts)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def virtual_host(route: RoutePolicy, services: Mapping[str, ServicePolicy], for_grpc: bool = False) -> rc.VirtualHost:
    return rc.VirtualHost(
        name=virtual_host_name(route.kind, route.name),
        domains=domains(route.hostnames),
        routes=list(_routes(route, services, for_grpc)),
    )


def _routes(route: RoutePolicy, services, for_grpc: bool):
    match_of = _grpc_match if route.type == "grpc" else _http_match
    for i, rule in enumerate(route.rules):
        action = rule["action"]
        if for_grpc and "redirect" in action:
            continue
        matches = rule.get("matches") or (EMPTY,)
        for j, match in enumerate(matches):
            if for_grpc and match.get("query_parameters"):
                continue
            message = rc.Route(name=f"rules[{i}].matches[{j}]", match=match_of(match))
            _set_action(message, action, route.type, services, for_grpc)
            yield message


def _set_action(message: rc.Route, action, route_type: str, services, for_grpc: bool):
    if "redirect" in action:
        message.redirect.CopyFrom(_redirect(action["redirect"]))
    else:
        message.route.CopyFrom(_forward(action, route_type, services, for_grpc))
    if "fault_injection_policy" in action:
        message.typed_per_filter_config[FAULT_FILTER].CopyFrom(packed(_fault(action["fault_injection_policy"])))
    if for_grpc:
        return
    if "cors_policy" in action:
        message.typed_per_filter_config[CORS_FILTER].CopyFrom(packed(_cors(action["cors_policy"])))
    request, response = action.get("request_header_modifier", {}), action.get("response_header_modifier", {})
    message.request_headers_to_add.extend(_header_options(request))
    message.request_headers_to_remove.extend(request.get("remove", ()))
    message.response_headers_to_add.extend(_header_options(response))
    message.response_headers_to_remove.extend(response.get("remove", ()))


# --- matches -----------------------------------------------------------------------------------------------------


def _http_match(match) -> rc.RouteMatch:
    message = rc.RouteMatch()
    ignore_case = match.get("ignore_case", False)
    if "regex_match" in match:
        message.safe_regex.CopyFrom(regex(match["regex_match"], ignore_case))
    else:
        if "full_path_match" in match:
            message.path = match["full_path_match"]
        else:
            message.prefix = match.get("prefix_match", "/")
        if ignore_case:
            message.case_sensitive.value = False
    message.headers.extend(_header_matcher(h) for h in match.get("header_matches", ()))
    message.query_parameters.extend(_query_matcher(q) for q in match.get("query_parameters", ()))
    return message


def _header_matcher(header) -> rc.HeaderMatcher:
    message = rc.HeaderMatcher(name=header["header"], invert_match=header.get("invert_match", False))
    if "exact_match" in header:
        message.string_match.exact = header["exact_match"]
    elif "regex_match" in header:
        message.string_match.safe_regex.CopyFrom(regex(header["regex_match"]))
    elif "prefix_match" in header:
        message.string_match.prefix = header["prefix_match"]
    elif "suffix_match" in header:
        message.string_match.suffix = header["suffix_match"]
    elif "range_match" in header:
        bounds = header["range_match"]
        message.range_match.CopyFrom(range_pb2.Int64Range(start=bounds["start"], end=bounds["end"]))
    else:
        message.present_match = True
    return message


def _query_matcher(query) -> rc.QueryParameterMatcher:
    message = rc.QueryParameterMatcher(name=query["query_parameter"])
    if "exact_match" in query:
        message.string_match.CopyFrom(exact(query["exact_match"]))
    elif "regex_match" in query:
        message.string_match.CopyFrom(regex_string(query["regex_match"]))
    else:
        message.present_match = True
    return message


def _grpc_match(match) -> rc.RouteMatch:
    """gRPC calls are POSTs to /<package.Service>/<Method>."""
    message = rc.RouteMatch()
    method = match.get("method")
    if method is None:
        message.prefix = "/"
    else:
        service, name = method.get("grpc_service"), method["grpc_method"]
        ignore_case = not method.get("case_sensitive", True)
        if method.get("type", "EXACT") == "REGULAR_EXPRESSION":
            message.safe_regex.CopyFrom(regex(f"/(?:{service or '[^/]+'})/(?:{name})", ignore_case))
        elif service is None:
            message.safe_regex.CopyFrom(regex(f"/[^/]+/{re.escape(name)}", ignore_case))
        else:
            message.path = f"/{service}/{name}"
            if ignore_case:
                message.case_sensitive.value = False
    message.headers.extend(_grpc_header_matcher(h) for h in match.get("headers", ()))
    return message


def _grpc_header_matcher(header) -> rc.HeaderMatcher:
    message = rc.HeaderMatcher(name=header["key"])
    if header.get("type", "EXACT") == "REGULAR_EXPRESSION":
        message.string_match.safe_regex.CopyFrom(regex(header["value"]))
    else:
        message.string_match.exact = header["value"]
    return message


# --- actions -----------------------------------------------------------------------------------------------------


def _forward(action, route_type: str, services, for_grpc: bool) -> rc.RouteAction:
    # A weight of 0 sends nothing; leaving it out keeps TCP-like strictness
    # (weights >= 1) everywhere and a single destination a plain cluster.
    destinations = [d for d in action["destinations"] if d["weight"] > 0]
    message = rc.RouteAction()
    if len(destinations) == 1:
        message.cluster = cluster_name(destinations[0]["service_name"])
    else:
        message.weighted_clusters.clusters.extend(
            rc.WeightedCluster.ClusterWeight(name=cluster_name(d["service_name"]), weight=uint32(d["weight"]))
            for d in destinations
        )
    if for_grpc:
        # Only a route's own timeout: a service default would cut every
        # long-lived stream of a proxyless client.
        if "timeout_sec" in action:
            message.max_stream_duration.max_stream_duration.CopyFrom(duration(action["timeout_sec"]))
    else:
        message.timeout.CopyFrom(duration(_timeout(action, destinations, services)))
    if "retry_policy" in action:
        message.retry_policy.CopyFrom(_retry(action["retry_policy"], route_type))
    message.hash_policy.extend(_hash_policies(destinations, services))
    if for_grpc:
        return message
    if "request_mirror_policy" in action:
        message.request_mirror_policies.append(_mirror(action["request_mirror_policy"]))
    rewrite = action.get("url_rewrite", {})
    if "path_prefix_rewrite" in rewrite:
        message.prefix_rewrite = rewrite["path_prefix_rewrite"]
    if "host_rewrite" in rewrite:
        message.host_rewrite_literal = rewrite["host_rewrite"]
    return message


def _timeout(action, destinations, services) -> float:
    if "timeout_sec" in action:
        return action["timeout_sec"]
    known = [services[d["service_name"]].timeout_sec for d in destinations if d["service_name"] in services]
    return max(known, default=DEFAULT_TIMEOUT_SEC)


def _retry(policy, route_type: str) -> rc.RetryPolicy:
    message = rc.RetryPolicy(
        retry_on=",".join(policy.get("retry_conditions") or (DEFAULT_RETRY_ON[route_type],)),
        num_retries=uint32(policy.get("num_retries", 1)),
    )
    if "per_try_timeout_sec" in policy:
        message.per_try_timeout.CopyFrom(duration(policy["per_try_timeout_sec"]))
    return message


def _mirror(policy) -> rc.RouteAction.RequestMirrorPolicy:
    return rc.RouteAction.RequestMirrorPolicy(
        cluster=cluster_name(policy["destination"]["service_name"]),
        runtime_fraction=base_pb2.RuntimeFractionalPercent(default_value=fraction(policy.get("mirror_percent", 100))),
    )


def _redirect(redirect) -> rc.RedirectAction:
    code = redirect.get("response_code", "MOVED_PERMANENTLY_DEFAULT").removesuffix("_DEFAULT")
    message = rc.RedirectAction(
        response_code=rc.RedirectAction.RedirectResponseCode.Value(code),
        https_redirect=redirect.get("https_redirect", False),
        strip_query=redirect.get("strip_query", False),
    )
    if "host_redirect" in redirect:
        message.host_redirect = redirect["host_redirect"]
    if "port_redirect" in redirect:
        message.port_redirect = redirect["port_redirect"]
    if "path_redirect" in redirect:
        message.path_redirect = redirect["path_redirect"]
    elif "prefix_rewrite" in redirect:
        message.prefix_rewrite = redirect["prefix_rewrite"]
    return message


def _fault(policy) -> fault_pb2.HTTPFault:
    message = fault_pb2.HTTPFault()
    if "delay" in policy:
        delay = policy["delay"]
        message.delay.CopyFrom(common_fault_pb2.FaultDelay(
            fixed_delay=duration(delay["fixed_delay_sec"]), percentage=fraction(delay.get("percentage", 100))))
    if "abort" in policy:
        abort = policy["abort"]
        message.abort.CopyFrom(fault_pb2.FaultAbort(
            http_status=abort["http_status"], percentage=fraction(abort.get("percentage", 100))))
    return message


def _cors(policy) -> cors_pb2.CorsPolicy:
    origins = [regex_string(".*") if origin == "*" else exact(origin) for origin in policy.get("allow_origins", ())]
    origins += [regex_string(pattern) for pattern in policy.get("allow_origin_regexes", ())]
    message = cors_pb2.CorsPolicy(
        allow_origin_string_match=origins,
        allow_methods=",".join(policy.get("allow_methods", ())),
        allow_headers=",".join(policy.get("allow_headers", ())),
        expose_headers=",".join(policy.get("expose_headers", ())),
        allow_credentials=wrappers_pb2.BoolValue(value=policy.get("allow_credentials", False)),
    )
    if "max_age_sec" in policy:
        message.max_age = str(policy["max_age_sec"])
    if policy.get("disabled"):
        message.filter_enabled.default_value.CopyFrom(fraction(0))
    return message


def _header_options(modifier) -> list[base_pb2.HeaderValueOption]:
    actions = (("set", base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD),
               ("add", base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD))
    return [
        # Envoy drops a header whose value is empty unless told to keep it.
        base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=name, value=value), append_action=append_action,
                                   keep_empty_value=value == "")
        for part, append_action in actions
        for name, value in modifier.get(part, {}).items()
    ]


# --- hashing -----------------------------------------------------------------------------------------------------


def _hash_policies(destinations, services) -> list[rc.RouteAction.HashPolicy]:
    policies: list[rc.RouteAction.HashPolicy] = []
    for destination in destinations:
        service = services.get(destination["service_name"])
        for policy in hash_policies(service) if service else ():
            if policy not in policies:
                policies.append(policy)
    return policies


def hash_policies(service: ServicePolicy) -> list[rc.RouteAction.HashPolicy]:
    HashPolicy = rc.RouteAction.HashPolicy
    hashing = service.consistent_hash or {}
    affinity = service.session_affinity
    cookie = hashing.get("http_cookie")
    if affinity == "CLIENT_IP" or (affinity == "NONE" and hashing.get("use_source_ip")):
        return [HashPolicy(connection_properties=HashPolicy.ConnectionProperties(source_ip=True))]
    if affinity in ("HEADER_FIELD", "NONE") and "http_header_name" in hashing:
        return [HashPolicy(header=HashPolicy.Header(header_name=hashing["http_header_name"]))]
    if affinity in ("HTTP_COOKIE", "GENERATED_COOKIE") or (affinity == "NONE" and cookie):
        return [HashPolicy(cookie=_cookie(cookie or EMPTY, generated=affinity == "GENERATED_COOKIE"))]
    return []


def _cookie(cookie, generated: bool) -> rc.RouteAction.HashPolicy.Cookie:
    message = rc.RouteAction.HashPolicy.Cookie(name=cookie.get("name", GENERATED_COOKIE), path=cookie.get("path", ""))
    # Envoy sets the cookie itself only when a ttl is given (0: a session cookie).
    if "ttl_sec" in cookie or generated:
        message.ttl.CopyFrom(duration(cookie.get("ttl_sec", 0)))
    return message
