"""Probing one batch of a probe round: the endpoints' targets, probed
concurrently (workers/probing) on the event loop this thread keeps."""
import asyncio
import threading

from service.mesh.models import Endpoint, HealthCheck

# One event loop and one Prober per worker thread (a Celery worker process
# runs one task at a time in it; `interlock dev` runs a few threads), kept
# from one batch to the next: HTTP connections then stay alive between rounds,
# as Envoy's health checker keeps them, instead of one connection per probe.
_kept = threading.local()


def probe_endpoints(check: HealthCheck, region: str, endpoint_ids: list[int]) -> list:
    """One workers.probing ProbeResult per endpoint that still exists (a deleted one is not probed)."""
    # Imported here, not at the top: the probers' module (its asyncio client)
    # is needed by the probe tasks only, not by every process that loads the tasks.
    from workers.probing import DenyList, ProbeTarget, spec_of

    endpoints = (Endpoint.objects.for_tenant(check.tenant_id).filter(pk__in=endpoint_ids)
                 .values_list("pk", "address", "port"))
    targets = [ProbeTarget(key=pk, address=address, port=port) for pk, address, port in endpoints]
    runner, prober = kept_prober()
    return runner.run(prober.probe_all(spec_of(check), targets, region=region, deny=DenyList.from_settings()))


def kept_prober():
    """This thread's event loop (an asyncio.Runner) and the Prober that lives on it."""
    from workers.probing import Prober

    if getattr(_kept, "runner", None) is None:
        _kept.runner = asyncio.Runner()
        _kept.prober = Prober()
    return _kept.runner, _kept.prober
