"""Many probes at once on one event loop, one result per target, never an
exception for a target."""
import asyncio
import logging
import ssl
import time

import aiohttp
import grpc
import httpx

from workers.probing import protocols
from workers.probing.destinations import DenyList, Destination, Refused, resolve
from workers.probing.spec import ProbeResult, ProbeSpec, ProbeTarget, user_agent

log = logging.getLogger(__name__)

# Probes in flight at once on one event loop (each holds a socket).
DEFAULT_CONCURRENCY = 1000
# How long an idle kept-alive HTTP connection is kept between probes. Longer
# would rarely pay: servers close idle connections after 5-75 s (then the next
# probe reconnects), and a check probed less often gains little from keep-alive.
KEEPALIVE_SECONDS = 60


class Prober:
    """The clients one event loop keeps between batches.

    HTTP and HTTPS probes go through one aiohttp session, which keeps a
    connection per endpoint address alive between probes, as Envoy's health
    checker does. That pays only when the prober lives as long as the worker
    process (one event loop and one Prober for the process, not one per
    batch): ``probe_all`` below opens a Prober for a single call."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "Prober":
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=0,  # probe_all's concurrency bounds the connections in use
                    use_dns_cache=False,  # it is only given checked IP addresses
                    keepalive_timeout=KEEPALIVE_SECONDS,
                ),
                timeout=aiohttp.ClientTimeout(total=None),  # each probe has its own deadline
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("Accept", "Accept-Encoding"),
                trust_env=False,
            )
        return self._session

    async def probe_all(self, spec: ProbeSpec, targets: list[ProbeTarget], *, region: str,
                        deny: DenyList, concurrency: int = DEFAULT_CONCURRENCY) -> list[ProbeResult]:
        """One result per target, in the targets' order, at most ``concurrency`` probes in flight."""
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        agent = user_agent(region)
        results: list[ProbeResult | None] = [None] * len(targets)
        queue = iter(enumerate(targets))

        # A fixed set of probing coroutines taking targets in turn, rather than a
        # task per target behind a semaphore: thousands of waiters on an
        # asyncio.Semaphore cost more CPU than the probes (each release scans them).
        async def take_in_turn() -> None:
            for index, target in queue:
                results[index] = await self.probe(spec, target, agent, deny)

        await asyncio.gather(*(take_in_turn() for _ in range(min(concurrency, len(targets)))))
        return results

    async def probe(self, spec: ProbeSpec, target: ProbeTarget, agent: str, deny: DenyList) -> ProbeResult:
        """One target within ``spec.timeout``, name resolution included."""
        started = time.perf_counter()
        destination: Destination | None = None
        try:
            async with asyncio.timeout(spec.timeout):
                destination = await resolve(target.address, spec.port or target.port, deny)
                error = await self.ask(spec, destination, spec.host or target.address, agent)
        except Exception as exc:  # noqa: BLE001 - one target's failure is its result, never the batch's
            address = destination.label if destination else ""
            return ProbeResult(target.key, False, None, address, failure(exc, spec, address))
        latency_ms = (time.perf_counter() - started) * 1000
        return ProbeResult(target.key, not error, latency_ms, destination.label, error)

    async def ask(self, spec: ProbeSpec, destination: Destination, host: str, agent: str) -> str:
        match spec.protocol:
            case "HTTP" | "HTTPS":
                return await protocols.probe_http(self.session(), spec, destination, host, agent)
            case "HTTP2":
                return await protocols.probe_http2(spec, destination, host, agent)
            case "TCP":
                return await protocols.probe_tcp(spec, destination)
            case "GRPC":
                return await protocols.probe_grpc(spec, destination, host, agent)
        raise ValueError(f"unknown probe protocol {spec.protocol!r}")


def failure(exc: Exception, spec: ProbeSpec, address: str) -> str:
    """Why a probe got no answer, in words a person can act on."""
    where = address or "the endpoint"
    if isinstance(exc, TimeoutError):
        return f"no answer within {spec.timeout:g} s"
    if isinstance(exc, Refused):
        return str(exc)
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"gRPC {exc.code().name}: {exc.details()}"
    # The clients wrap the socket's error; the root cause is what a person needs.
    cause = root_cause(exc)
    if isinstance(cause, ConnectionRefusedError):
        return f"connection refused by {where}"
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"TLS certificate of {where} not trusted: {cause.verify_message}"
    if isinstance(cause, ssl.SSLError):
        return f"TLS handshake with {where} failed: {cause.reason or cause}"
    if isinstance(exc, (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError, ConnectionResetError)):
        return f"{where} closed the connection without an answer"
    if isinstance(exc, (aiohttp.ClientError, httpx.HTTPError, OSError)):
        return f"{address}: {exc}" if address else str(exc)
    log.exception("probe of %s failed unexpectedly", where)
    return f"probe failed: {exc.__class__.__name__}: {exc}"


def root_cause(exc: BaseException) -> BaseException:
    seen = {id(exc)}
    while True:
        inner = exc.__cause__ or getattr(exc, "os_error", None) or exc.__context__
        if inner is None or id(inner) in seen:
            return exc
        seen.add(id(inner))
        exc = inner


async def probe_all(spec: ProbeSpec, targets: list[ProbeTarget], *, region: str, deny: DenyList,
                    concurrency: int = DEFAULT_CONCURRENCY) -> list[ProbeResult]:
    """Probe every target once, on a Prober of this call only (no keep-alive between calls)."""
    async with Prober() as prober:
        return await prober.probe_all(spec, targets, region=region, deny=deny, concurrency=concurrency)
