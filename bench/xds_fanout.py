"""xDS fan-out: one endpoint change pushed to N streams of one replica, beside
the floor of raw grpc.aio broadcasting the same pre-serialized bytes.

    python bench/xds_fanout.py [--streams 100,1000,4000] [--changes 3] [--json out.json]

Makes its own database (``interlock_bench_xds``, dropped and recreated on the
server DATABASE_URL names), migrates it, and seeds the demo mesh through the
API (in this process, through the WSGI app: the domain layer's validation,
revision and after-commit notice). It starts ``interlock xds`` as a subprocess
on Redis, and a floor server (this file, ``--floor``) as another.

For each N and each protocol form (sotw, delta) a client process (this file,
``--clients``) opens N real gRPC streams at once, each as an Envoy sidecar
would (CDS by wildcard, EDS of one service by name), ACKs the initial
configuration and reports how many streams failed to open. Then, --changes
times, an endpoint is attached to (or detached from) the service's group
through the API; every stream ACKs the push it receives. Reported:

    commit->ACK   p50/p99/max over every stream's ACK of every change, from the
                  moment the change notice was published after commit
    CPU/push      server process CPU seconds from the commit to the last ACK
    KB/stream     growth of the server's RSS with the N streams open, per stream
    open failed   streams that failed to open (all N are opened at once)

and the same for the floor: a grpc.aio server whose streams answer each
request with, and on a trigger write, the bytes the real server sent for that
EDS subscription (already serialized), to the same N clients.

Aims (issue 3): N=1000 p99 <= 300 ms and <= 2x the floor; N=4000 p99 <= 1.5 s;
<= 100 KB per stream; 1000 streams opened at once all succeed. The machine is
2 cores shared with other work: figures are noisy and the client process
competes with the server for the same cores.
"""
import argparse
import asyncio
import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent))

BENCH_DATABASE = "interlock_bench_xds"
CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
SERVICE, GROUP = "shop-v1", "shop-v1-east"
ADS = "envoy.service.discovery.v3.AggregatedDiscoveryService"


def parse_args(argv=None):
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--streams", default="100,1000,4000", help="N values, comma-separated")
    cli.add_argument("--forms", default="sotw,delta")
    cli.add_argument("--changes", type=int, default=3, help="endpoint changes per N and form")
    cli.add_argument("--per-channel", type=int, default=10, help="streams per client connection")
    cli.add_argument("--database-url", default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/"))
    cli.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14"))
    cli.add_argument("--json", metavar="PATH")
    # Internal roles of this file.
    cli.add_argument("--clients", type=int, help=argparse.SUPPRESS)
    cli.add_argument("--form", help=argparse.SUPPRESS)
    cli.add_argument("--target", help=argparse.SUPPRESS)
    cli.add_argument("--token", help=argparse.SUPPRESS)
    cli.add_argument("--floor", metavar="PAYLOADS", help=argparse.SUPPRESS)
    cli.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return cli.parse_args(argv)


# --- measuring a process ------------------------------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# --- the clients (a separate process) -----------------------------------------------------------------------------

def client_requests(form: str, node, token: str):
    from envoy.service.discovery.v3 import discovery_pb2

    if form == "delta":
        make = discovery_pb2.DeltaDiscoveryRequest
        first = [make(type_url=CLUSTER, node=node), make(type_url=ENDPOINT, resource_names_subscribe=[SERVICE])]
        ack = lambda r: make(type_url=r.type_url, response_nonce=r.nonce)  # noqa: E731
    else:
        make = discovery_pb2.DiscoveryRequest
        first = [make(type_url=CLUSTER, node=node), make(type_url=ENDPOINT, resource_names=[SERVICE])]
        ack = lambda r: make(type_url=r.type_url, version_info=r.version_info, resource_names=(  # noqa: E731
            [SERVICE] if r.type_url == ENDPOINT else []), response_nonce=r.nonce)
    return first, ack


async def one_client(channel, index: int, form: str, token: str, ready, acks: list):
    import grpc
    from envoy.config.core.v3 import base_pb2
    from envoy.service.discovery.v3 import ads_pb2_grpc

    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
    method = stub.DeltaAggregatedResources if form == "delta" else stub.StreamAggregatedResources
    call = method(metadata=(("authorization", f"Bearer {token}"),))
    node = base_pb2.Node(id=f"tenants/bench/meshes/demo/nodes/n{index}", user_agent_name="envoy")
    node.locality.region = "us-east-1"
    node.metadata.fields["cloud"].string_value = "aws"
    first, ack = client_requests(form, node, token)
    for request in first:
        await call.write(request)
        await call.write(ack(await call.read()))
    ready()
    while True:
        response = await call.read()
        if response is grpc.aio.EOF:
            return
        await call.write(ack(response))
        acks.append(time.time())


async def run_clients(args):
    import grpc

    channels = [grpc.aio.insecure_channel(args.target) for _ in range(-(-args.clients // args.per_channel))]
    acks = [[] for _ in range(args.clients)]
    opened = 0
    settled = asyncio.Event()  # every stream opened or failed

    def ready():
        nonlocal opened
        opened += 1
        check_settled()

    def check_settled(*_):
        if opened + sum(1 for t in tasks if t.done()) >= args.clients:
            settled.set()

    started = time.monotonic()
    # All N at once: the aim is that every one of them opens.
    tasks = [asyncio.create_task(one_client(channels[i // args.per_channel], i, args.form, args.token, ready, acks[i]))
             for i in range(args.clients)]
    for task in tasks:
        task.add_done_callback(check_settled)
    try:
        await asyncio.wait_for(settled.wait(), 300)
    except TimeoutError:
        pass
    report({"ready": opened, "failed": args.clients - opened, "open_seconds": time.monotonic() - started})
    live = [acks[i] for i, task in enumerate(tasks) if not task.done()]
    loop = asyncio.get_running_loop()
    pushes = 0
    while await loop.run_in_executor(None, sys.stdin.readline):  # one line per change to wait for
        pushes += 1
        deadline = time.monotonic() + 120
        while any(len(a) < pushes for a in live) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        report({"acks": [a[pushes - 1] for a in live if len(a) >= pushes]})
    for task in tasks:
        task.cancel()
    for channel in channels:
        await channel.close()


def report(document):
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()


# --- the floor server (a separate process) ------------------------------------------------------------------------

async def run_floor(args):
    import grpc

    payloads = json.loads(Path(args.floor).read_text())
    payloads = {form: bytes.fromhex(value) for form, value in payloads.items()}
    broadcast = asyncio.Condition()
    generation = 0

    def handler(form):
        async def stream(requests, context):
            requests = aiter(requests)
            seen = generation
            waiter = asyncio.create_task(wait_broadcast(seen))
            reader = asyncio.create_task(anext_request(requests))
            while True:
                done, _ = await asyncio.wait({waiter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if reader in done:
                    request = reader.result()
                    if request is None:
                        waiter.cancel()
                        return
                    if not request.response_nonce:
                        await context.write(payloads[form])
                    reader = asyncio.create_task(anext_request(requests))
                if waiter in done:
                    seen = waiter.result()
                    await context.write(payloads[form])
                    waiter = asyncio.create_task(wait_broadcast(seen))
        return stream

    async def anext_request(requests):
        return await anext(requests, None)

    async def wait_broadcast(seen):
        async with broadcast:
            await broadcast.wait_for(lambda: generation > seen)
            return generation

    async def trigger(request, context):
        nonlocal generation
        async with broadcast:
            generation += 1
            broadcast.notify_all()
        return b""

    from envoy.service.discovery.v3 import discovery_pb2

    from service.xds.server import SERVER_OPTIONS

    server = grpc.aio.server(options=SERVER_OPTIONS)
    raw = lambda body: body  # noqa: E731
    server.add_generic_rpc_handlers([
        grpc.method_handlers_generic_handler(ADS, {
            "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(
                handler("sotw"), request_deserializer=discovery_pb2.DiscoveryRequest.FromString,
                response_serializer=raw),
            "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(
                handler("delta"), request_deserializer=discovery_pb2.DeltaDiscoveryRequest.FromString,
                response_serializer=raw),
        }),
        grpc.method_handlers_generic_handler("bench.Floor", {
            "Broadcast": grpc.unary_unary_rpc_method_handler(trigger, request_deserializer=raw,
                                                             response_serializer=raw),
        }),
    ])
    server.add_insecure_port(f"127.0.0.1:{args.port}")
    await server.start()
    await server.wait_for_termination()


# --- the orchestrator ---------------------------------------------------------------------------------------------

def setup_django(args, database: str = BENCH_DATABASE) -> str:
    """A fresh database of this bench's own, migrated; notices on a channel of this run's own."""
    from api_write import recreate_database

    os.environ["DATABASE_URL"] = recreate_database(args.database_url, database)
    os.environ["REDIS_URL"] = args.redis_url
    os.environ["NOTICE_CHANNEL"] = f"interlock-bench:{uuid.uuid4().hex}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "service.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return os.environ["DATABASE_URL"]


class Api:
    """The REST API in this process: a change goes through validation, the
    revision and the after-commit notice exactly as under gunicorn."""

    def __init__(self):
        from django.test import Client

        from service.tenants.services import create_tenant

        tenant, key = create_tenant("bench")
        tenant.max_proxies = 100000
        tenant.save()
        self.client = Client(HTTP_AUTHORIZATION=f"Bearer {key.plaintext}")

    def call(self, method, path, body=None):
        response = getattr(self.client, method)(f"/api/v1/{path}", json.dumps(body) if body is not None else None,
                                                content_type="application/json")
        if response.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.content[:500]!r}")
        return response.json()


def seed(api: Api) -> str:
    from service.dev import demo_policy

    for collection, body in demo_policy():
        api.call("post", collection, body)
    return api.call("post", "node-tokens", {"name": "bench", "mesh": "demo"})["token"]


def start_process(argv, env=None, **kwargs):
    return subprocess.Popen([sys.executable, *argv], env={**os.environ, **(env or {})}, **kwargs)


def wait_for_port(port: int, process, timeout=60.0):
    import grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    finally:
        channel.close()
    if process.poll() is not None:
        raise RuntimeError(f"process exited with {process.returncode}")


@contextlib.contextmanager
def serving(argv_for_port):
    """A server subprocess on a free port, stopped on exit: yields (port, pid)."""
    port = free_port()
    process = start_process(argv_for_port(port), env={"LOG_LEVEL": "ERROR"})
    try:
        wait_for_port(port, process)
        yield port, process.pid
    finally:
        from api_write import stop_server  # not at the top: the stream clients this file also runs need none of it

        stop_server(process, timeout=20)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def capture_payloads(port: int, token: str) -> dict:
    """The EDS response bytes the real server sends a sidecar, per form: the floor sends the same."""
    import grpc
    import queue

    from envoy.config.core.v3 import base_pb2
    from envoy.service.discovery.v3 import ads_pb2_grpc

    captured = {}
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        for form, method in (("sotw", stub.StreamAggregatedResources), ("delta", stub.DeltaAggregatedResources)):
            node = base_pb2.Node(id="tenants/bench/meshes/demo/nodes/probe", user_agent_name="envoy")
            node.locality.region = "us-east-1"
            node.metadata.fields["cloud"].string_value = "aws"
            requests = queue.Queue()
            first, ack = client_requests(form, node, token)
            responses = method(iter(requests.get, None), metadata=(("authorization", f"Bearer {token}"),))
            for request in first:
                requests.put(request)
                response = next(responses)
                requests.put(ack(response))
            captured[form] = response.SerializeToString().hex()
            requests.put(None)
            responses.cancel()
    return captured


class Notices:
    """When each change notice arrived: the commit time the latencies start from."""

    def __init__(self):
        from service.notices import get_bus

        self.times = []
        self.arrived = threading.Event()
        self._subscription = get_bus().subscribe(self._heard)

    def _heard(self, notice):
        self.times.append(time.time())
        self.arrived.set()

    def close(self):
        self._subscription.close()


def run_round(port: int, server_pid: int, n: int, form: str, token: str, args, change) -> dict:
    rss_before = rss_bytes(server_pid)
    clients = start_process([str(HERE), "--clients", str(n), "--form", form, "--target", f"127.0.0.1:{port}",
                             "--token", token,
                             "--per-channel", str(args.per_channel)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        opened = json.loads(clients.stdout.readline())
        time.sleep(1.0)  # let the server settle (records written) before measuring its memory
        rss_after = rss_bytes(server_pid)
        latencies, cpu = [], []
        for _ in range(args.changes):
            cpu_before = cpu_seconds(server_pid)
            started = change(port)
            clients.stdin.write("next\n")
            clients.stdin.flush()
            acks = json.loads(clients.stdout.readline())["acks"]
            cpu.append(cpu_seconds(server_pid) - cpu_before)
            latencies += [t - started for t in acks]
            time.sleep(0.5)
    finally:
        clients.stdin.close()
        try:
            clients.wait(timeout=60)
        except subprocess.TimeoutExpired:
            clients.kill()
    return {
        "n": n, "form": form, "opened": opened["ready"], "open_failed": opened["failed"],
        "open_s": round(opened["open_seconds"], 2),
        "acks": len(latencies),
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1) if latencies else None,
        "max_ms": round(max(latencies) * 1000, 1) if latencies else None,
        "cpu_per_push_s": round(statistics.mean(cpu), 3) if cpu else None,
        "kb_per_stream": round((rss_after - rss_before) / n / 1024, 1),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.clients:
        asyncio.run(run_clients(args))
        return 0
    if args.floor:
        asyncio.run(run_floor(args))
        return 0

    setup_django(args)
    api = Api()
    token = seed(api)
    notices = Notices()
    payloads = Path(f"/tmp/interlock-bench-payloads-{os.getpid()}.json")
    changes = itertools.count()

    def endpoint_change(port):
        notices.arrived.clear()
        # Alternate over the whole run, so that every change is a real one.
        action = "attach" if next(changes) % 2 == 0 else "detach"
        body = {"endpoints": [{"address": "127.0.0.99", "port": 8080}]}
        api.call("post", f"endpoint-groups/{GROUP}/{action}", body)
        if not notices.arrived.wait(10):
            raise RuntimeError("no change notice was heard")
        return notices.times[-1]

    def floor_broadcast(port):
        import grpc

        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            started = time.time()
            channel.unary_unary("/bench.Floor/Broadcast")(b"")
        return started

    servers = {
        "interlock": (lambda port: ["-m", "service.cli", "xds", "--port", str(port), "--replica", "bench"],
                      endpoint_change),
        "floor": (lambda port: [str(HERE), "--floor", str(payloads), "--port", str(port)], floor_broadcast),
    }
    results = []
    try:
        with serving(servers["interlock"][0]) as (port, _):
            payloads.write_text(json.dumps(capture_payloads(port, token)))
        for n in [int(v) for v in args.streams.split(",")]:
            for form in args.forms.split(","):
                for kind, (argv, change) in servers.items():
                    # A fresh server per round, warmed by one probe stream, so that its memory
                    # growth is this round's streams only.
                    with serving(argv) as (port, pid):
                        capture_payloads(port, token)
                        row = {"server": kind, **run_round(port, pid, n, form, token, args, change)}
                    results.append(row)
                    print(json.dumps(row), flush=True)
    finally:
        notices.close()
        payloads.unlink(missing_ok=True)
    print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def print_table(results):
    print("\nserver     form   N     opened failed  p50 ms  p99 ms  max ms  CPU s/push  KB/stream")
    for r in results:
        print(f"{r['server']:<10} {r['form']:<6} {r['n']:<5} {r['opened']:<6} {r['open_failed']:<6} "
              f"{r['p50_ms']!s:>7} {r['p99_ms']!s:>7} {r['max_ms']!s:>7} {r['cpu_per_push_s']!s:>10} "
              f"{r['kb_per_stream']!s:>10}")


if __name__ == "__main__":
    sys.exit(main())
