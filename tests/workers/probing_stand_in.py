"""A TEST DOUBLE of workers.probing's interface (ProbeSpec, ProbeTarget,
ProbeResult, DenyList, spec_of, probe_all), used only while the real prober
is not in the tree: a TCP-connect probe in a few lines, enough for the
scheduling, recording and verdict tests here, which probe loopback TCP
servers. install_unless_present(), which the worker launcher (worker_main.py) calls,
installs it only when `import workers.probing` fails; delete both once workers/probing lands."""
import asyncio
import ipaddress
import sys
import time
from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class ProbeSpec:
    protocol: str
    port: int | None
    timeout: float = 5.0


@dataclass(frozen=True)
class ProbeTarget:
    key: object
    address: str
    port: int


@dataclass(frozen=True)
class ProbeResult:
    key: object
    ok: bool
    latency_ms: float | None
    address: str
    error: str


class DenyList:
    def __init__(self, allow_loopback: bool):
        self.allow_loopback = allow_loopback

    @classmethod
    def from_settings(cls):
        return cls(settings.PROBE_ALLOW_LOOPBACK)

    def refuses(self, address: str) -> bool:
        return ipaddress.ip_address(address).is_loopback and not self.allow_loopback


def spec_of(check) -> ProbeSpec:
    block = check.tcp_health_check or check.http_health_check or {}
    return ProbeSpec("TCP", block.get("port"), check.timeout_sec)


async def probe_all(spec, targets, *, region, deny, concurrency=1000):
    return list(await asyncio.gather(*(probe(spec, target, deny) for target in targets)))


async def probe(spec, target, deny) -> ProbeResult:
    port = spec.port or target.port
    where = f"{target.address}:{port}"
    if deny.refuses(target.address):
        return ProbeResult(target.key, False, None, where, f"refused: {target.address} is denied")
    started = time.monotonic()
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(target.address, port), spec.timeout)
    except (OSError, asyncio.TimeoutError) as exc:
        return ProbeResult(target.key, False, None, where, f"connect failed: {exc!r}")
    writer.close()
    return ProbeResult(target.key, True, (time.monotonic() - started) * 1000, where, "")


def install_unless_present():
    """Stands in for workers.probing in this process only while the real one is not in the tree."""
    try:
        import workers.probing  # noqa: F401
    except ModuleNotFoundError:
        sys.modules["workers.probing"] = sys.modules[__name__]
