"""Real loopback servers for the probing tests, one per protocol, each with a
path (or port, or service name) that answers right, one that answers wrongly
and one that hangs; each records what the prober sent (User-Agent, Host, SNI,
HTTP version, connections)."""
import asyncio
import contextlib
import socket
import ssl
from dataclasses import dataclass, field

import grpc
from aiohttp import web
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config

HEALTHY_BODY = b"all good here"
HANG_SECONDS = 30  # far past any probe timeout in the tests


@dataclass
class Seen:
    """What a server saw: one entry per request (or connection)."""
    user_agents: list = field(default_factory=list)
    hosts: list = field(default_factory=list)
    snis: list = field(default_factory=list)
    http_versions: list = field(default_factory=list)
    peers: list = field(default_factory=list)
    connections: int = 0
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


def closed_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_tls(pki, seen: Seen, alpn=("http/1.1",)) -> ssl.SSLContext:
    import tempfile

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.NamedTemporaryFile() as cert, tempfile.NamedTemporaryFile() as key:
        cert.write(pki.cert_pem), cert.flush()
        key.write(pki.key_pem), key.flush()
        context.load_cert_chain(cert.name, key.name)
    context.set_alpn_protocols(list(alpn))
    context.sni_callback = lambda _sslobject, name, _context: seen.snis.append(name)
    return context


async def hang(stopping: asyncio.Event) -> None:
    """Answer nothing until the server stops (or long past any probe's timeout)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), HANG_SECONDS)


async def answer(path: str, stopping: asyncio.Event) -> tuple[int, bytes]:
    """The routes every HTTP server here shares."""
    if path == "/healthy":
        return 200, HEALTHY_BODY
    if path == "/status":
        return 503, b"down for maintenance"
    if path == "/body":
        return 200, b"something else"
    if path == "/hang":
        await hang(stopping)
    return 404, b"no such path"


@contextlib.asynccontextmanager
async def http_server(ssl_context=None, route=None):
    """aiohttp's server: HTTP/1.1, over TLS when given a context; with ``route``,
    every path is answered as that one is. Yields (port, seen)."""
    seen = Seen()

    async def handle(request: web.Request) -> web.Response:
        seen.user_agents.append(request.headers.get("User-Agent"))
        seen.hosts.append(request.headers.get("Host"))
        seen.peers.append(request.transport.get_extra_info("peername"))
        status, body = await answer(route or request.path, seen.stopping)
        return web.Response(status=status, body=body)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    # A backlog for the thousands of connections a batch opens at once.
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context, backlog=4096)
    await site.start()
    try:
        yield runner.addresses[0][1], seen
    finally:
        seen.stopping.set()
        await runner.cleanup()


@contextlib.asynccontextmanager
async def http2_server(pki=None, route=None):
    """Hypercorn: prior-knowledge h2c in plaintext, h2 by ALPN over TLS (with ``pki``);
    with ``route``, every path is answered as that one is."""
    seen = Seen()

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        headers = dict(scope["headers"])
        seen.user_agents.append(headers.get(b"user-agent", b"").decode())
        seen.hosts.append(headers.get(b"host", b"").decode())
        seen.http_versions.append(scope["http_version"])
        status, body = await answer(route or scope["path"], seen.stopping)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": body})

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    config = Config()
    port = listener.getsockname()[1]
    config.bind = [f"fd://{listener.detach()}"]  # hypercorn owns (and closes) the socket
    config.graceful_timeout = 0.1
    config.accesslog = config.errorlog = None
    if pki is not None:
        import tempfile

        directory = tempfile.mkdtemp()
        config.certfile, config.keyfile = f"{directory}/cert.pem", f"{directory}/key.pem"
        open(config.certfile, "wb").write(pki.cert_pem)
        open(config.keyfile, "wb").write(pki.key_pem)
    stop = asyncio.Event()
    task = asyncio.create_task(hypercorn_serve(app, config, shutdown_trigger=stop.wait))
    await asyncio.sleep(0.2)  # hypercorn starts serving the socket
    try:
        yield port, seen
    finally:
        seen.stopping.set()
        stop.set()
        await asyncio.wait_for(task, 5)


@contextlib.asynccontextmanager
async def tcp_server(reply: bytes | None):
    """Reads a line; answers ``reply`` (None: never answers). Yields (port, seen)."""
    seen = Seen()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.connections += 1
        with contextlib.suppress(ConnectionError):
            await reader.readline()
            if reply is None:
                await hang(seen.stopping)
            else:
                writer.write(reply)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], seen
    finally:
        seen.stopping.set()
        server.close()


class RecordUserAgent(grpc.aio.ServerInterceptor):
    def __init__(self, seen: Seen):
        self.seen = seen

    async def intercept_service(self, continuation, handler_call_details):
        metadata = dict(handler_call_details.invocation_metadata)
        self.seen.user_agents.append(metadata.get("user-agent"))
        return await continuation(handler_call_details)


@contextlib.asynccontextmanager
async def grpc_health_server(svc_status=health_pb2.HealthCheckResponse.SERVING):
    """grpc.health.v1 from grpcio-health-checking: "svc" SERVING (or ``svc_status``), "down" NOT_SERVING."""
    seen = Seen()
    server = grpc.aio.server(interceptors=[RecordUserAgent(seen)])
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    await servicer.set("svc", svc_status)
    await servicer.set("down", health_pb2.HealthCheckResponse.NOT_SERVING)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield port, seen
    finally:
        await server.stop(None)
