"""Whether a proxy may connect: the tenant's ``max_proxies`` quota.

A proxy is a node (tenant, mesh, name). One already connected, on this replica
or another, may always connect again (a reconnect, or a second stream of the
same node); a new one only while the tenant has fewer than ``max_proxies``
connected. Connected proxies are counted across replicas: the proxy rows of
other replicas that are connected (records.py writes them), plus this
replica's own ADS streams, which it knows before their rows are written. A
replica checks and registers a stream with no wait in between, so its own
concurrent connects cannot pass the quota together; connects at different
replicas within the moment their rows take to be written can (by at most one
per replica each).
"""
from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q

from service.xds.streams import Node


class ProxyQuotaExceeded(Exception):
    def __init__(self, limit: int, connected: int):
        super().__init__(f"the tenant's max_proxies quota is {limit} and {connected} proxies are connected: "
                         "disconnect one, or ask the operator for a larger quota")


@dataclass(frozen=True)
class Elsewhere:
    """What the database says of a tenant's connected proxies on other replicas."""

    limit: int  # the tenant's max_proxies
    proxies: int  # connected on other replicas, the connecting node left out
    has_node: bool  # whether the connecting node is one of them


def proxies_elsewhere(tenant_id: int, node: Node, replica: str) -> Elsewhere:
    """(ORM) The tenant's quota, and its proxies connected on replicas other than ``replica``."""
    from service.tenants.models import Tenant
    from service.xds.models import Proxy

    # A tenant deleted meanwhile has room for none (its token is gone too).
    limit = Tenant.objects.filter(pk=tenant_id).values_list("max_proxies", flat=True).first() or 0
    this_node = Q(mesh_id=node[0], name=node[1])
    counts = (Proxy.objects.filter(tenant_id=tenant_id, disconnected_at__isnull=True).exclude(replica=replica)
              .aggregate(others=Count("pk", filter=~this_node), this=Count("pk", filter=this_node)))
    return Elsewhere(limit, counts["others"], counts["this"] > 0)


def check_room(node: Node, elsewhere: Elsewhere, here) -> None:
    """Raise ProxyQuotaExceeded if ``node`` is a new proxy beyond the quota;
    ``here`` holds the tenant's proxies connected to this replica."""
    if node in here or elsewhere.has_node:
        return
    connected = elsewhere.proxies + len(here)
    if connected >= elsewhere.limit:
        raise ProxyQuotaExceeded(elsewhere.limit, connected)
