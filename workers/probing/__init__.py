"""Health probes (HTTP, HTTPS, HTTP/2, TCP, gRPC health) from one worker
process, on asyncio; no Celery here. The tasks call ``probe_all`` (or a
long-lived ``Prober`` for keep-alive between rounds) and record the results."""
from workers.probing.destinations import DenyList, Refused
from workers.probing.prober import Prober, probe_all
from workers.probing.spec import ProbeResult, ProbeSpec, ProbeTarget, spec_of, user_agent

__all__ = [
    "DenyList", "ProbeResult", "ProbeSpec", "ProbeTarget", "Prober", "Refused", "probe_all", "spec_of", "user_agent",
]
