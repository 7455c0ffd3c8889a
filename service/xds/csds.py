"""Client Status Discovery: a tenant's connected proxies and, per xDS type, the
version each has ACKed or the NACK it sent, from the proxy records (so every
replica answers for the proxies of all replicas)."""
from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.admin.v3 import config_dump_shared_pb2
from envoy.service.status.v3 import csds_pb2

from service.xds.auth import CLOUD_FIELD


class UnsupportedMatcher(ValueError):
    pass


def client_status(tenant_id: int, request: csds_pb2.ClientStatusRequest) -> csds_pb2.ClientStatusResponse:
    """ORM: the answer to one request, for one tenant's proxies only."""
    from service.xds.models import Proxy

    proxies = (Proxy.objects.filter(tenant_id=tenant_id, disconnected_at__isnull=True)
               .prefetch_related("xds").order_by("node_id"))
    return csds_pb2.ClientStatusResponse(config=[
        client_config(proxy) for proxy in proxies if matches(request.node_matchers, proxy.node_id)
    ])


def matches(node_matchers, node_id: str) -> bool:
    """Whether the node id passes every matcher's node_id (other criteria are refused)."""
    for matcher in node_matchers:
        if matcher.node_metadatas:
            raise UnsupportedMatcher("node_metadatas matchers are not supported; match on node_id")
        if matcher.HasField("node_id") and not _string_matches(matcher.node_id, node_id):
            return False
    return True


def _string_matches(matcher, value: str) -> bool:
    kind = matcher.WhichOneof("match_pattern")
    if matcher.ignore_case:
        value = value.lower()
    pattern = getattr(matcher, kind) if kind in ("exact", "prefix", "suffix", "contains") else None
    if pattern is None:
        raise UnsupportedMatcher(f"node_id matcher {kind!r} is not supported; use exact, prefix, suffix or contains")
    if matcher.ignore_case:
        pattern = pattern.lower()
    return {
        "exact": value == pattern,
        "prefix": value.startswith(pattern),
        "suffix": value.endswith(pattern),
        "contains": pattern in value,
    }[kind]


def client_config(proxy) -> csds_pb2.ClientConfig:
    node = base_pb2.Node(id=proxy.node_id, user_agent_name=proxy.user_agent.partition(" ")[0],
                         locality=base_pb2.Locality(region=proxy.region, zone=proxy.zone))
    node.metadata.fields[CLOUD_FIELD].string_value = proxy.cloud
    return csds_pb2.ClientConfig(node=node, generic_xds_configs=[
        type_config(status) for status in sorted(proxy.xds.all(), key=lambda s: s.type_url)
    ])


def type_config(status) -> csds_pb2.ClientConfig.GenericXdsConfig:
    config = csds_pb2.ClientConfig.GenericXdsConfig(type_url=status.type_url, version_info=status.version_acked)
    if status.error_message:
        config.client_status = config_dump_shared_pb2.NACKED
        config.config_status = csds_pb2.ERROR
        config.error_state.details = status.error_message
        config.error_state.version_info = status.version_sent
        if status.error_at:
            config.error_state.last_update_attempt.FromDatetime(status.error_at)
    elif status.version_acked and status.version_acked == status.version_sent:
        config.client_status = config_dump_shared_pb2.ACKED
        config.config_status = csds_pb2.SYNCED
    else:
        config.client_status = config_dump_shared_pb2.REQUESTED
        config.config_status = csds_pb2.STALE if status.version_sent else csds_pb2.NOT_SENT
    if status.acked_at:
        config.last_updated.FromDatetime(status.acked_at)
    return config
