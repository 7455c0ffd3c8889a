"""Health probes per second of one worker process against many loopback
endpoints, beside a floor measured in the same run.

    python bench/health_probe.py [--endpoints 10000] [--rounds 3] [--json out.json]
    python bench/health_probe.py --compare-clients [--endpoints 2000]

The endpoints are --endpoints listeners (one port each) on 127.0.0.1, spread
over --servers server processes: a bare asyncio protocol that answers every
HTTP/1.1 request with a fixed 200 on a kept-alive connection (and accepts
and drops a TCP connect). This process is the worker: it runs each phase as
--rounds rounds over every endpoint, --concurrency probes in flight, after a
warm-up round that opens the kept-alive connections, and reports probes/s
(wall clock) and CPU per probe (this process's CPU time, which the server
processes do not add to):

    HTTP floor     raw asyncio streams: a fixed HTTP/1.1 GET (with the same
                   headers) on a kept-alive connection per endpoint; read the
                   head and the Content-Length body; no Interlock code
    HTTP client floor  the same requests through aiohttp (the client the
                   probes use), one pooled, kept-alive ClientSession, from a
                   bare loop: no Interlock code (the probe's ratio to it is
                   what Interlock adds)
    HTTP probe     workers.probing: a long-lived Prober's probe_all (deny-list
                   check, timeout, aiohttp request, status and body check)
    TCP floor      a bare asyncio.open_connection and close per endpoint
    TCP probe      workers.probing with a TCP spec

--compare-clients measures the candidate HTTP clients on the same endpoints
instead (aiohttp's ClientSession and httpx's AsyncClient, one each, pooled,
kept-alive): the measurement behind the choice of aiohttp.

The aims (docs/performance.md): at least 2,000 probes/s per worker process,
and within 1.5x the floor's CPU per probe.
"""
import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402

from workers.probing import DenyList, Prober, ProbeSpec, ProbeTarget, user_agent  # noqa: E402

AIM_PROBES_PER_SECOND = 2000
AIM_CPU_RATIO = 1.5
REGION = "bench"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
REQUEST = (f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: {user_agent(REGION)}\r\n\r\n").encode()


def raise_fd_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class FixedAnswer(asyncio.Protocol):
    """The endpoint: a 200 for every request head received, connection kept."""

    def connection_made(self, transport):
        self.transport = transport
        self.pending = b""

    def data_received(self, data):
        self.pending += data
        heads = self.pending.count(b"\r\n\r\n")
        if heads:
            self.pending = self.pending.rsplit(b"\r\n\r\n", 1)[1]
            self.transport.write(RESPONSE * heads)


def serve(count: int, ports: multiprocessing.Queue) -> None:
    raise_fd_limit()

    async def main():
        loop = asyncio.get_running_loop()
        servers = [await loop.create_server(FixedAnswer, "127.0.0.1", 0, backlog=1024) for _ in range(count)]
        ports.put([server.sockets[0].getsockname()[1] for server in servers])
        await asyncio.Event().wait()

    asyncio.run(main())


def start_endpoints(endpoints: int, processes: int) -> tuple[list[int], list[multiprocessing.Process]]:
    queue = multiprocessing.Queue()
    shares = [endpoints // processes + (1 if i < endpoints % processes else 0) for i in range(processes)]
    servers = [multiprocessing.Process(target=serve, args=(share, queue), daemon=True) for share in shares]
    for server in servers:
        server.start()
    ports = [port for _ in servers for port in queue.get(timeout=120)]
    return ports, servers


async def measure(name: str, round_, ports: list[int], rounds: int, warm_up: bool) -> dict:
    """``rounds`` calls of ``round_(ports)``, each probing every port; every probe must succeed."""
    if warm_up:
        await round_(ports)
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(rounds):
        failed = [result for result in await round_(ports) if result is not True]
        if failed:
            raise SystemExit(f"{name}: {len(failed)} probes failed, e.g. {failed[0]}")
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    probes = rounds * len(ports)
    return {"phase": name, "probes": probes, "probes_per_s": probes / wall, "cpu_us_per_probe": cpu / probes * 1e6}


def bounded(probe, concurrency: int):
    """A round of the floor: ``probe(port)`` for every port, ``concurrency`` coroutines taking ports in turn."""
    async def round_(ports):
        results = [None] * len(ports)
        queue = iter(enumerate(ports))

        async def take_in_turn():
            for index, port in queue:
                results[index] = await probe(port)

        await asyncio.gather(*(take_in_turn() for _ in range(min(concurrency, len(ports)))))
        return results

    return round_


def http_floor():
    connections = {}

    async def probe(port):
        if port not in connections:
            connections[port] = await asyncio.open_connection("127.0.0.1", port)
        reader, writer = connections[port]
        writer.write(REQUEST)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
        await reader.readexactly(length)
        return head.startswith(b"HTTP/1.1 200 ")

    async def close():
        for _reader, writer in connections.values():
            writer.close()

    return probe, close


async def tcp_floor(port):
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.close()
    await writer.wait_closed()
    return True


def interlock(prober: Prober, spec: ProbeSpec, concurrency: int):
    """A round as a worker runs it: one probe_all over every endpoint."""
    deny = DenyList.of([], allow_loopback=True)

    async def round_(ports):
        targets = [ProbeTarget(port, "127.0.0.1", port) for port in ports]
        results = await prober.probe_all(spec, targets, region=REGION, deny=deny, concurrency=concurrency)
        return [True if result.ok else result for result in results]

    return round_


async def phases(ports, rounds, concurrency) -> list[dict]:
    results = []
    probe, close = http_floor()
    results.append(await measure("HTTP floor (raw asyncio streams)", bounded(probe, concurrency), ports, rounds, True))
    await close()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        results.append(await measure("HTTP client floor (bare aiohttp)", bounded(aiohttp_get(session), concurrency),
                                     ports, rounds, True))
    async with Prober() as prober:
        spec = ProbeSpec("HTTP", port=None, request_path="/healthz", response="ok", timeout=30)
        results.append(await measure("HTTP probe (workers.probing)", interlock(prober, spec, concurrency), ports,
                                     rounds, True))
    results.append(await measure("TCP floor (open_connection)", bounded(tcp_floor, concurrency), ports, rounds, False))
    async with Prober() as prober:
        spec = ProbeSpec("TCP", port=None, timeout=30)
        results.append(await measure("TCP probe (workers.probing)", interlock(prober, spec, concurrency), ports,
                                     rounds, False))
    return results


def aiohttp_get(session):
    """A probe of the floor through aiohttp: the GET the probes send, status and body checked."""
    headers = {"Host": "127.0.0.1", "User-Agent": user_agent(REGION)}

    async def probe(port):
        async with session.get(f"http://127.0.0.1:{port}/healthz", headers=headers) as response:
            return b"ok" in await response.read() and response.status == 200

    return probe


async def clients(ports, rounds, concurrency) -> list[dict]:
    import httpx

    headers = {"Host": "127.0.0.1", "User-Agent": user_agent(REGION)}
    results = []
    probe, close = http_floor()
    results.append(await measure("HTTP floor (raw asyncio streams)", bounded(probe, concurrency), ports, rounds, True))
    await close()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        results.append(await measure("aiohttp ClientSession", bounded(aiohttp_get(session), concurrency), ports,
                                     rounds, True))
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=len(ports))
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        async def httpx_probe(port):
            response = await client.get(f"http://127.0.0.1:{port}/healthz", headers=headers)
            return b"ok" in response.content and response.status_code == 200

        results.append(await measure("httpx AsyncClient (HTTP/1.1)", bounded(httpx_probe, concurrency), ports,
                                     rounds, True))
    return results


def report(results: list[dict], compare_clients: bool) -> None:
    """Each phase beside the first floor of its kind (HTTP, TCP); each probe also beside every floor of its kind."""
    floors: dict[str, list[dict]] = {}
    print(f"{'phase':36} {'probes':>7} {'probes/s':>9} {'CPU us/probe':>13} {'x floor CPU':>12}")
    for result in results:
        kind = result["phase"].split()[0]
        if "floor" in result["phase"]:
            floors.setdefault(kind, []).append(result)
        floor = (floors.get(kind) or floors["HTTP"])[0]
        result["cpu_ratio"] = result["cpu_us_per_probe"] / floor["cpu_us_per_probe"]
        print(f"{result['phase']:36} {result['probes']:>7} {result['probes_per_s']:>9.0f} "
              f"{result['cpu_us_per_probe']:>13.1f} {result['cpu_ratio']:>12.2f}")
    if compare_clients:
        return
    for result in results:
        if "probe" not in result["phase"]:
            continue
        rate = result["probes_per_s"]
        print(f"{result['phase']}: {rate:.0f} probes/s (aim >= {AIM_PROBES_PER_SECOND}: "
              f"{'met' if rate >= AIM_PROBES_PER_SECOND else 'NOT met'})")
        for floor in floors[result["phase"].split()[0]]:
            ratio = result["cpu_us_per_probe"] / floor["cpu_us_per_probe"]
            print(f"  {ratio:.2f}x the CPU per probe of the {floor['phase']} "
                  f"(aim <= {AIM_CPU_RATIO}: {'met' if ratio <= AIM_CPU_RATIO else 'NOT met'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", type=int, default=None, help="listeners (10000; 2000 with --compare-clients)")
    parser.add_argument("--servers", type=int, default=2, help="server processes the listeners are spread over")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--compare-clients", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    endpoints = args.endpoints or (2000 if args.compare_clients else 10000)
    raise_fd_limit()
    print(f"load average at start: {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs; "
          f"{endpoints} endpoints on {args.servers} server processes; {args.rounds} rounds; "
          f"{args.concurrency} in flight")
    ports, servers = start_endpoints(endpoints, args.servers)
    try:
        run = clients if args.compare_clients else phases
        results = asyncio.run(run(ports, args.rounds, args.concurrency))
    finally:
        for server in servers:
            server.terminate()
    report(results, args.compare_clients)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
