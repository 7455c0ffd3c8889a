"""One probe of each protocol against a destination already resolved and
checked (destinations.py). Each returns "" for a right answer and a reason
for a wrong one, and raises for no answer (the prober words the exception);
none of them resolves a name: they connect to ``destination.ip`` and send the
name only as Host, TLS SNI or gRPC authority."""
import asyncio
import functools
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from yarl import URL

from workers.probing.destinations import Destination, literal_ip
from workers.probing.spec import ProbeSpec

# How much of a body is searched for the expected response, and how much of a
# TCP reply. GCP searches the first 1,024 bytes; a larger window accepts
# everything GCP accepts. A longer body is not read to its end, so its
# connection is closed rather than kept.
RESPONSE_LIMIT = 8 * 1024


@functools.cache
def tls_context(verify: bool, alpn: tuple[str, ...]) -> ssl.SSLContext:
    """One context per kind, built once (loading the CA store costs milliseconds)."""
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(list(alpn))
    return context


def server_name(host: str) -> str | None:
    """The TLS SNI for a Host: the name itself; none for an IP address (TLS sends no IP SNI)."""
    return None if literal_ip(host.strip("[]")) else host


def http_url(spec: ProbeSpec, destination: Destination, scheme: str) -> URL:
    authority = f"[{destination.ip}]" if destination.ip.version == 6 else str(destination.ip)
    return URL(f"{scheme}://{authority}:{destination.port}{spec.request_path}", encoded=True)


def http_verdict(status: int, body: bytes, spec: ProbeSpec) -> str:
    # Traffic Director counts 200 only; redirects are not followed.
    if status != 200:
        return f"HTTP {status} (a healthy endpoint answers 200)"
    if spec.response and spec.response.encode() not in body:
        return f"the response body's first {RESPONSE_LIMIT} bytes do not contain {spec.response!r}"
    return ""


async def read_prefix(read: Callable[[], Awaitable[bytes]], limit: int, until: bytes = b"") -> bytes:
    """Up to ``limit`` bytes from ``read`` (b"" at the end), stopping early once ``until`` is in them."""
    data = bytearray()
    while len(data) < limit:
        chunk = await read()
        if not chunk:
            break
        data += chunk
        if until and until in data:
            break
    return bytes(data[:limit])


async def probe_http(session: aiohttp.ClientSession, spec: ProbeSpec, destination: Destination,
                     host: str, user_agent: str) -> str:
    """HTTP/1.1 (HTTPS: over TLS), on the worker's long-lived session: kept-alive connections per address."""
    tls = spec.protocol == "HTTPS"
    async with session.get(
        http_url(spec, destination, "https" if tls else "http"),
        headers={"Host": host, "User-Agent": user_agent},
        allow_redirects=False,
        ssl=tls_context(spec.verify_tls, ("http/1.1",)) if tls else False,
        server_hostname=server_name(host) if tls else None,
    ) as response:
        body = await read_prefix(response.content.readany, RESPONSE_LIMIT)
        return http_verdict(response.status, body, spec)


async def probe_http2(spec: ProbeSpec, destination: Destination, host: str, user_agent: str) -> str:
    """HTTP/2 as Envoy's HTTP2 health checker speaks it: prior-knowledge h2c in
    plaintext, h2 negotiated by ALPN over TLS. One connection per probe."""
    sni = server_name(host)
    async with httpx.AsyncClient(
        http1=False, http2=True, verify=tls_context(spec.verify_tls, ("h2",)),
        trust_env=False, follow_redirects=False, timeout=None,
    ) as client:
        async with client.stream(
            "GET", str(http_url(spec, destination, "https" if spec.tls else "http")),
            headers={"Host": host, "User-Agent": user_agent},
            extensions={"sni_hostname": sni} if spec.tls and sni else {},
        ) as response:
            chunks: AsyncIterator[bytes] = response.aiter_raw()
            body = await read_prefix(lambda: anext(chunks, b""), RESPONSE_LIMIT)
            return http_verdict(response.status_code, body, spec)


async def probe_tcp(spec: ProbeSpec, destination: Destination) -> str:
    """Connect; send ``request`` if set; expect ``response`` in the reply if set."""
    reader, writer = await asyncio.open_connection(str(destination.ip), destination.port)
    try:
        if spec.request:
            writer.write(spec.request.encode())
            await writer.drain()
        if not spec.response:
            return ""
        expected = spec.response.encode()
        reply = await read_prefix(lambda: reader.read(RESPONSE_LIMIT), RESPONSE_LIMIT, until=expected)
        return "" if expected in reply else f"the reply does not contain {spec.response!r} (got {reply[:64]!r})"
    finally:
        writer.close()


async def probe_grpc(spec: ProbeSpec, destination: Destination, host: str, user_agent: str) -> str:
    """grpc.health.v1.Health/Check for ``grpc_service_name``; SERVING is healthy."""
    scheme = "ipv6" if destination.ip.version == 6 else "ipv4"
    target = f"{scheme}:{destination.label}"
    options = [
        # gRPC puts this before its own "grpc-python/..." in the user-agent header.
        ("grpc.primary_user_agent", user_agent),
        ("grpc.default_authority", host),
        ("grpc.enable_retries", 0),
    ]
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=spec.grpc_service_name), timeout=spec.timeout
        )
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        return f"gRPC health status {health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)}"
    return ""
