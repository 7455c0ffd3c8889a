"""Bootstraps for the customer's proxies: options in, a JSON-able dict out.

An Envoy sidecar and a proxyless gRPC client each need a small static file
that says who they are (the node id and locality), where the xDS server is and
how to prove they belong to a tenant's mesh (the node token). Everything else
they get over xDS. Both functions validate their options first and raise
:class:`BootstrapError` naming the field at fault, so a typo is explained here
rather than as a refused stream or an Envoy that will not start.
"""
from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass

# An underscore, which no backend service name can hold: the two cannot collide.
XDS_CLUSTER = "interlock_xds"
LOOPBACK = "127.0.0.1"

# The rule of service.mesh.validation.resource_name (RFC 1035 labels), which
# names tenants, meshes and node tokens; mirrored because that module needs
# Django REST framework and the client must not. A test keeps the two equal.
_RESOURCE_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", re.IGNORECASE | re.ASCII)
_HOST_PORT = re.compile(r"(?P<host>\[[^\]]*\]|[^\[\]]*):(?P<port>[0-9]{1,5})")
# service.tenants.secrets issues `<kind>_<12 hex>_<token_urlsafe>`; the kind of
# node tokens is service.tenants.services.NODE_TOKEN_KIND.
NODE_TOKEN_KIND = "ilt"
_NODE_TOKEN = re.compile(NODE_TOKEN_KIND + r"_[0-9a-f]{12}_[A-Za-z0-9_-]+", re.ASCII)
# Locality and cloud labels travel as protobuf strings and end up in the API.
_LABEL = re.compile(r"[-a-zA-Z0-9_.]{0,63}", re.ASCII)

# A dropped stream is retried after 0.25 s, backing off (with jitter) to at
# most 5 s, so a restarted xDS server is reconnected to within seconds.
_RETRY_BASE = "0.25s"
_RETRY_MAX = "5s"
_CONNECT_TIMEOUT = "2s"
# HTTP/2 PINGs find a server that vanished without closing the connection
# (host lost, NAT entry expired) in at most interval + timeout.
_KEEPALIVE_INTERVAL = "20s"
_KEEPALIVE_TIMEOUT = "5s"

# How long Envoy waits for its first clusters, then its first listeners,
# before it goes LIVE without them: "0s" is for ever. Envoy's default (15 s
# each) let an Envoy whose stream was refused (a revoked token, a server that
# is away) report ready and serve nothing; waiting keeps it not ready (/ready
# 503), so a readiness probe keeps traffic away until its configuration arrives.
_INITIAL_FETCH_TIMEOUT = "0s"

_TYPE = "type.googleapis.com/"


class BootstrapError(ValueError):
    """An option that cannot make a working bootstrap; `field` names it."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class BootstrapOptions:
    server: str  # "host:port" of the xDS server
    tenant: str
    mesh: str
    node: str
    token: str
    cloud: str = ""
    region: str = ""
    zone: str = ""
    tls_ca: str | None = None  # path of a CA bundle; None = plaintext
    delta: bool = False
    admin_port: int = 15000
    # The name the server's certificate is checked against (and Envoy's SNI)
    # when it differs from the host in `server`, e.g. when dialling an IP.
    server_name: str = ""


@dataclass(frozen=True)
class _Server:
    host: str  # without IPv6 brackets
    port: int
    is_ip: bool


def node_id(options: BootstrapOptions) -> str:
    return f"tenants/{options.tenant}/meshes/{options.mesh}/nodes/{options.node}"


def envoy_bootstrap(options: BootstrapOptions) -> dict:
    """An Envoy v3 bootstrap: ADS to the `interlock_xds` cluster, admin on loopback."""
    server = _validate(options)
    _check_port("admin_port", options.admin_port, allow_zero=True)
    return {
        "node": _node(options),
        "admin": {"address": _socket_address(LOOPBACK, options.admin_port)},
        "dynamic_resources": {
            "ads_config": {
                "api_type": "DELTA_GRPC" if options.delta else "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [_envoy_grpc_service(options.token)],
            },
            "lds_config": _ads_config_source(),
            "cds_config": _ads_config_source(),
        },
        "static_resources": {"clusters": [_xds_cluster(server, options)]},
    }


def grpc_bootstrap(options: BootstrapOptions) -> dict:
    """The bootstrap grpc's xDS client reads (gRFC A27, `tls` creds of A65).

    gRPC's bootstrap has no call credentials for an opaque token, so the token
    travels in node metadata `interlock_token`, which the server reads from the
    first request of the stream; use TLS so that it is not sent in the clear.
    """
    server = _validate(options)
    if options.delta:
        raise BootstrapError("delta", "gRPC's xDS client speaks state of the world only; delta is for Envoy.")
    if options.server_name and options.server_name != server.host:
        raise BootstrapError(
            "server_name",
            "gRPC checks the server certificate against the host of --server; "
            "connect by the name the certificate carries instead.",
        )
    node = _node(options)
    node["metadata"]["interlock_token"] = options.token
    return {
        "xds_servers": [
            {
                "server_uri": options.server,
                "channel_creds": [_grpc_channel_creds(options.tls_ca)],
                "server_features": ["xds_v3"],
            }
        ],
        "node": node,
    }


def _node(options: BootstrapOptions) -> dict:
    # Envoy refuses to start without a service cluster; the mesh is the
    # closest thing a node has to one.
    node = {"id": node_id(options), "cluster": options.mesh, "metadata": {}}
    locality = {key: value for key, value in (("region", options.region), ("zone", options.zone)) if value}
    if locality:
        node["locality"] = locality
    if options.cloud:
        node["metadata"]["cloud"] = options.cloud
    return node


def _ads_config_source() -> dict:
    return {"ads": {}, "resource_api_version": "V3", "initial_fetch_timeout": _INITIAL_FETCH_TIMEOUT}


def _envoy_grpc_service(token: str) -> dict:
    return {
        "envoy_grpc": {
            "cluster_name": XDS_CLUSTER,
            "retry_policy": {"retry_back_off": {"base_interval": _RETRY_BASE, "max_interval": _RETRY_MAX}},
        },
        "initial_metadata": [{"key": "authorization", "value": f"Bearer {token}"}],
    }


def _xds_cluster(server: _Server, options: BootstrapOptions) -> dict:
    cluster = {
        "name": XDS_CLUSTER,
        # A name is re-resolved when the connection is re-made (a moved
        # server); an IP needs no resolver.
        "type": "STATIC" if server.is_ip else "LOGICAL_DNS",
        "connect_timeout": _CONNECT_TIMEOUT,
        "load_assignment": {
            "cluster_name": XDS_CLUSTER,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": _socket_address(server.host, server.port)}}]}],
        },
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": _TYPE + "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {
                    "http2_protocol_options": {
                        "connection_keepalive": {"interval": _KEEPALIVE_INTERVAL, "timeout": _KEEPALIVE_TIMEOUT}
                    }
                },
            }
        },
    }
    if not server.is_ip:
        cluster["dns_lookup_family"] = "V4_PREFERRED"
    if options.tls_ca is not None:
        cluster["transport_socket"] = _tls_transport_socket(options.tls_ca, options.server_name or server.host)
    return cluster


def _tls_transport_socket(ca_path: str, server_name: str) -> dict:
    is_ip = _is_ip(server_name)
    context = {
        "@type": _TYPE + "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context": {
            "alpn_protocols": ["h2"],
            "validation_context": {
                "trusted_ca": {"filename": os.path.abspath(ca_path)},
                # Envoy checks the chain against trusted_ca but the name only
                # when told which names to accept.
                "match_typed_subject_alt_names": [
                    {"san_type": "IP_ADDRESS" if is_ip else "DNS", "matcher": {"exact": server_name}}
                ],
            },
        },
    }
    if not is_ip:  # RFC 6066: SNI carries host names, never addresses
        context["sni"] = server_name
    return {"name": "envoy.transport_sockets.tls", "typed_config": context}


def _grpc_channel_creds(ca_path: str | None) -> dict:
    if ca_path is None:
        return {"type": "insecure"}
    return {"type": "tls", "config": {"ca_certificate_file": os.path.abspath(ca_path)}}


def _socket_address(host: str, port: int) -> dict:
    return {"socket_address": {"address": host, "port_value": port}}


# Validation


def _validate(options: BootstrapOptions) -> _Server:
    server = _parse_server(options.server)
    for field in ("tenant", "mesh"):
        _check_name(field, getattr(options, field))
    _check_node_name(options.node)
    _check_token(options.token)
    for field in ("cloud", "region", "zone"):
        _check_label(field, getattr(options, field))
    if options.tls_ca is not None:
        _check_ca_file(options.tls_ca)
    if options.server_name:
        if options.tls_ca is None:
            raise BootstrapError("server_name", "only means something with TLS; give tls_ca too.")
        if not (_is_ip(options.server_name) or _is_dns_name(options.server_name)):
            raise BootstrapError("server_name", f"{options.server_name!r} is neither a host name nor an IP address.")
    return server


def _parse_server(text: str) -> _Server:
    match = _HOST_PORT.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise BootstrapError("server", f"{text!r} is not host:port (e.g. xds.example.com:443 or [2001:db8::1]:443).")
    host, port = match["host"], int(match["port"])
    _check_port("server", port)
    bracketed = host.startswith("[")
    host = host.strip("[]")
    if bracketed and not _is_ipv6(host):
        raise BootstrapError("server", f"[{host}] is not an IPv6 address.")
    if not (_is_ip(host) or _is_dns_name(host)):
        raise BootstrapError("server", f"{host!r} is neither a host name nor an IP address.")
    if _is_ipv6(host) and not bracketed:
        raise BootstrapError("server", f"write an IPv6 address in brackets: [{host}]:{port}.")
    return _Server(host, port, _is_ip(host))


def _check_port(field: str, port, allow_zero=False):
    lowest = 0 if allow_zero else 1
    if isinstance(port, bool) or not isinstance(port, int) or not lowest <= port <= 65535:
        raise BootstrapError(field, f"port {port!r} is not between {lowest} and 65535.")


def _check_name(field: str, value):
    if not isinstance(value, str) or not _RESOURCE_NAME.fullmatch(value):
        raise BootstrapError(
            field,
            f"invalid name {value!r}: use 1 to 63 lowercase letters, digits or hyphens, "
            "starting with a letter and not ending with a hyphen.",
        )


def _check_node_name(value):
    # A node is named by its operator, usually after its host: `$(hostname)`
    # on EC2 gives ip-10-0-0-7.ec2.internal, so any DNS name will do.
    if not isinstance(value, str) or not _is_dns_name(value):
        raise BootstrapError("node", f"invalid name {value!r}: use a DNS name (letters, digits, hyphens and dots).")


def _check_token(token):
    # Never echo the token: error messages end up in logs.
    if not isinstance(token, str) or not token:
        raise BootstrapError("token", "no node token given.")
    if not _NODE_TOKEN.fullmatch(token):
        raise BootstrapError(
            "token",
            f"not an Interlock node token (expected {NODE_TOKEN_KIND}_<12 hex digits>_<secret>, "
            "as POST /api/v1/node-tokens/ returns it).",
        )


def _check_label(field: str, value):
    if not isinstance(value, str) or not _LABEL.fullmatch(value):
        raise BootstrapError(field, f"{value!r}: use at most 63 letters, digits, '-', '_' or '.'.")


def _check_ca_file(path):
    if not isinstance(path, str) or not path:
        raise BootstrapError("tls_ca", "give the path of a PEM CA bundle.")
    try:
        with open(path, "rb") as handle:
            head = handle.read(1 << 20)
    except FileNotFoundError:
        raise BootstrapError("tls_ca", f"{path}: no such file.") from None
    except OSError as exc:
        raise BootstrapError("tls_ca", f"{path}: cannot be read ({exc.strerror}).") from None
    if b"-----BEGIN CERTIFICATE-----" not in head:
        raise BootstrapError("tls_ca", f"{path}: no PEM certificate in it.")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_ipv6(host: str) -> bool:
    return _is_ip(host) and ":" in host


def _is_dns_name(name: str) -> bool:
    if not name or len(name) > 253:
        return False
    return all(_DNS_LABEL.fullmatch(label) for label in name.split("."))
