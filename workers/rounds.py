"""Probing one batch of a probe round: the endpoints' targets, probed
concurrently on an event loop of this call's own (workers/probing)."""
import asyncio

from service.mesh.models import Endpoint, HealthCheck


def probe_endpoints(check: HealthCheck, region: str, endpoint_ids: list[int]) -> list:
    """One workers.probing ProbeResult per endpoint that still exists (a deleted one is not probed)."""
    # Imported here, not at the top: the probers' module (its asyncio client)
    # is needed by the probe tasks only, not by every process that loads the tasks.
    from workers.probing import DenyList, ProbeTarget, probe_all, spec_of

    endpoints = (Endpoint.objects.for_tenant(check.tenant_id).filter(pk__in=endpoint_ids)
                 .values_list("pk", "address", "port"))
    targets = [ProbeTarget(key=pk, address=address, port=port) for pk, address, port in endpoints]
    return asyncio.run(probe_all(spec_of(check), targets, region=region, deny=DenyList.from_settings()))
