"""Route write latency and throughput of the REST API, served as in production.

    python bench/api_write.py [--requests 500] [--concurrency 8] [--json out.json]

Makes its own database (``interlock_bench``, dropped and recreated each run on
the server DATABASE_URL names), migrates it, starts ``interlock api`` (gunicorn,
the CLI's defaults) as a subprocess on Redis, creates a tenant with the CLI,
seeds a mesh with two endpoint groups and two backend services, and then
measures, with K client threads in this process (an http.client connection
each, kept alive where the server keeps it; its sync workers close it):

    healthz  GET /healthz: no database, no auth -- the framework+server floor
    one-row  N POST /bench/one-row: the peer, the smallest DRF write (auth, rate
             limit, a two-field serializer, one INSERT in a transaction;
             bench/api_write_peer.py, served beside the API by the same server)
    create   N POST /api/v1/http-routes, unique names and hostnames
    update   N PATCH /api/v1/http-routes/<name>, new canary weights

Besides latency and throughput it reports the CPU each request cost: the API
server's processes, the Postgres backends serving them, and this client (from
/proc, so other work on the machine does not count in them, as it does in the
wall-clock figures). Every response status is checked; any non-2xx makes the
run exit 1. The load stops at --max-seconds whatever is left, and the server is
always stopped.
"""
import argparse
import contextlib
import http.client
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import psycopg

from service.cli import API_THREADS, API_WORKERS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DATABASE = "interlock_bench"
# Production's settings, plus the peer endpoint (bench/api_write_peer.py).
BENCH_SETTINGS = "bench.api_write_settings"
AIM_WRITES_PER_SEC = 200
AIM_P99_MS = 100.0
MESH = "bench"
SERVICES = ("bs1", "bs2")
# The seed: a mesh, two endpoint groups, a backend service on each.
SEED = [
    ("meshes", {"name": MESH}),
    *[("endpoint-groups", {"name": f"eg{i}",
                           "locality": {"cloud": "aws", "region": "us-east-1", "zone": "us-east-1a"},
                           "endpoints": [{"address": f"10.0.0.{i}", "port": 8080}]}) for i in (1, 2)],
    *[("backend-services", {"name": name, "mesh": MESH, "backends": [{"endpoint_group": f"eg{i}"}]})
      for i, name in enumerate(SERVICES, start=1)],
]


def parse_args(argv=None) -> argparse.Namespace:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # 500 lets every phase finish well inside the cap at today's ~40-50 writes/s on 2 shared cores.
    cli.add_argument("--requests", type=int, default=500, help="requests per phase (default 500)")
    cli.add_argument("--concurrency", type=int, default=8, help="client threads (default 8)")
    add_server_arguments(cli)
    cli.add_argument("--max-seconds", type=float, default=120.0, help="wall-clock cap on the load (default 120)")
    cli.add_argument("--database-url", default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/"),
                     help="the Postgres server to use; the database name is always " + BENCH_DATABASE)
    cli.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14"))
    cli.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    return cli.parse_args(argv)


# --- the server -------------------------------------------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    """The same server and credentials, another database: the bench never
    touches the database the caller's URL names."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


def recreate_database(url: str, name: str = BENCH_DATABASE) -> str:
    bench_url = with_database(url, name)
    # DROP/CREATE DATABASE cannot run in a transaction, nor from inside the database itself.
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return bench_url


def lift_quota(bench_url: str):
    """The default quota (2000 policy resources) would refuse creates of a long
    run; this bench measures writes, not quotas."""
    with psycopg.connect(bench_url, autocommit=True) as conn:
        conn.execute("UPDATE tenants_tenant SET max_resources = 1000000")


def migrate_and_make_tenant(env: dict, bench_url: str) -> str:
    """Migrate the bench database, make the tenant the load writes as (with
    no quota in the way), and return its API key."""
    interlock(env, "migrate")
    key = json.loads(interlock(env, "tenant", "create", "bench"))["api_key"]
    lift_quota(bench_url)
    return key


def interlock(env: dict, *args: str) -> str:
    """Run the operator CLI (the `interlock` entry point) and return its stdout."""
    done = subprocess.run([sys.executable, "-m", "service.cli", *args], env=env, cwd=ROOT, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SystemExit(f"interlock {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def add_server_arguments(cli: argparse.ArgumentParser):
    cli.add_argument("--workers", type=int, default=API_WORKERS,
                     help=f"gunicorn workers (default {API_WORKERS}, as `interlock api`)")
    cli.add_argument("--threads", type=int, default=API_THREADS,
                     help=f"threads per gunicorn worker (default {API_THREADS}, as `interlock api`)")


@contextlib.contextmanager
def serving(env: dict, port: int, args, log):
    """`interlock api` on `port`, ready for the body; its log printed if the
    body fails, and the server always stopped."""
    server = start_server(env, port, args.workers, args.threads, log)
    try:
        wait_ready(f"http://127.0.0.1:{port}", server)
        yield server
    except BaseException:
        print(f"server log (last 3000 characters):\n{tail(log)}", file=sys.stderr)
        raise
    finally:
        stop_server(server)


def start_server(env: dict, port: int, workers: int, threads: int, log) -> subprocess.Popen:
    command = [sys.executable, "-m", "service.cli", "api", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(workers), "--threads", str(threads)]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(base: str, server: subprocess.Popen, timeout: float = 30.0):
    """Until /readyz says the database and the notice bus answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the API server exited with {server.returncode} while starting")
        probe = Client(base, key="", timeout=1.0)
        try:
            if probe.get("/readyz").status == 200:
                return
        except (OSError, http.client.HTTPException):  # not listening yet
            pass
        finally:
            probe.conn.close()
        time.sleep(0.1)
    raise SystemExit(f"the API server was not ready after {timeout:.0f} s")


def stop_server(server: subprocess.Popen, timeout: float = 15):
    # SIGTERM is every server's graceful stop here (gunicorn's takes its workers down with it).
    server.terminate()
    try:
        server.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


# --- CPU accounting ---------------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (FileNotFoundError, ProcessLookupError):
                pass
    return found


class CpuMeter:
    """CPU used between two readings by the API server (master and workers),
    by the Postgres backends connected to the bench database, and by this
    process (the client threads)."""

    def __init__(self, server_pid: int, bench_url: str):
        self.server_pid = server_pid
        self.conn = psycopg.connect(bench_url, autocommit=True)

    def backends(self) -> list[int]:
        rows = self.conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                                 [BENCH_DATABASE]).fetchall()
        return [pid for (pid,) in rows]

    def reading(self) -> dict:
        server = [self.server_pid, *children_of(self.server_pid)]
        return {"api": {pid: cpu_seconds(pid) for pid in server},
                "postgres": {pid: cpu_seconds(pid) for pid in self.backends()},
                "client": time.process_time()}

    def used(self, before: dict) -> dict:
        """Seconds of CPU since `before`; a process started since counts whole."""
        after = self.reading()
        used = {"client": after["client"] - before["client"]}
        for part in ("api", "postgres"):
            used[part] = sum(seconds - before[part].get(pid, 0.0) for pid, seconds in after[part].items())
        return used

    def close(self):
        self.conn.close()


# --- the load ---------------------------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    planned: int
    latencies_ms: list = field(default_factory=list)
    failures: list = field(default_factory=list)  # (request index, status or exception, body excerpt)
    seconds: float = 0.0
    capped: bool = False  # stopped by the wall-clock cap before all requests were sent
    cpu: dict = field(default_factory=dict)  # seconds of CPU per part ("api", "postgres", "client")

    @property
    def done(self) -> int:
        return len(self.latencies_ms)

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile, so p99 is a latency some request actually had."""
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else float("nan")

    def summary(self) -> dict:
        return {
            "phase": self.name, "requests": self.done, "planned": self.planned, "failures": len(self.failures),
            "seconds": round(self.seconds, 3), "per_sec": round(self.done / self.seconds, 1) if self.seconds else 0,
            "p50_ms": round(self.percentile(0.50), 2), "p99_ms": round(self.percentile(0.99), 2),
            "max_ms": round(max(self.latencies_ms, default=float("nan")), 2), "capped": self.capped,
            "cpu_ms_per_request": {part: round(seconds * 1000 / max(self.done, 1), 2)
                                   for part, seconds in self.cpu.items()},
        }


def run_phase(name: str, requests: list, concurrency: int, deadline: float, clients, meter: CpuMeter) -> Phase:
    """`requests` ((method, path, encoded body or None) each, made before the
    clock starts), sent from `concurrency` threads that take the next as soon
    as they are free (a closed loop)."""
    count = len(requests)
    phase = Phase(name, count)
    cpu_before = meter.reading()
    indexes, lock = iter(range(count)), threading.Lock()

    def load(client):
        while True:
            with lock:
                i = next(indexes, None)
                if i is not None and time.monotonic() > deadline:
                    phase.capped, i = True, None
            if i is None:
                return
            method, path, payload = requests[i]
            started = time.perf_counter()
            try:
                answer = client.send(method, path, payload)
                status, body = answer.status, answer.data
            except (OSError, http.client.HTTPException) as exc:
                status, body = type(exc).__name__, str(exc).encode()
            elapsed_ms = (time.perf_counter() - started) * 1000
            with lock:
                phase.latencies_ms.append(elapsed_ms)
                if not (isinstance(status, int) and 200 <= status < 300):
                    # Decoded only here: a body nobody reads is CPU taken from the server.
                    phase.failures.append((i, status, body[:300].decode(errors="replace")))

    threads = [threading.Thread(target=load, args=(client,)) for client in clients[:concurrency]]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    phase.seconds = time.perf_counter() - started
    phase.cpu = meter.used(cpu_before)
    print(f"  {name}: {phase.done} requests in {phase.seconds:.1f} s", flush=True)
    return phase


def route_body(i: int, weight: int = 90) -> dict:
    return {
        "name": f"r{i}", "meshes": [MESH], "hostnames": [f"r{i}.bench.example"],
        "rules": [{"matches": [{"prefix_match": "/"}],
                   "action": {"destinations": [{"service_name": SERVICES[0], "weight": weight},
                                               {"service_name": SERVICES[1], "weight": 100 - weight}]}}],
    }


class Client:
    """One client thread's connection to the server: the standard library's
    http.client, which opens a new connection when the server closed the last
    one (the sync workers close every one). Not requests, nor urllib3: the load
    shares the server's cores, and their sessions, pools and retries cost ~1 ms
    and ~0.3 ms of CPU per request that the server then lacks. Not
    thread-safe: one per thread."""

    def __init__(self, base: str, key: str, timeout: float = 30.0):
        parts = urlsplit(base)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def send(self, method: str, path: str, body: bytes | None = None) -> "Answer":
        try:
            self.conn.request(method, path, body=body, headers=self.headers)
            response = self.conn.getresponse()
            return Answer(response.status, response.read())
        except (OSError, http.client.HTTPException):
            self.conn.close()  # the next request opens a new connection
            raise

    def get(self, path: str) -> "Answer":
        return self.send("GET", path)

    def post(self, path: str, body) -> "Answer":
        return self.send("POST", path, encoded(body))


@dataclass
class Answer:
    status: int
    data: bytes


def encoded(body) -> bytes:
    return json.dumps(body).encode()


def clients_for(base: str, key: str, count: int) -> list[Client]:
    return [Client(base, key) for _ in range(count)]


def seed(client: Client):
    for path, body in SEED:
        response = client.post(f"/api/v1/{path}", body)
        if response.status != 201:
            raise SystemExit(f"seeding {path} {body['name']} failed: {response.status} "
                             f"{response.data[:500].decode(errors='replace')}")


def warm_up(clients, rounds: int = 10):
    """Each gunicorn worker imports lazily on its first requests; keep that out of the figures."""
    for _ in range(rounds):
        for client in clients:
            client.get("/healthz")
            client.get("/api/v1/http-routes")
            client.get("/api/v1/changes")


def run_load(base: str, key: str, args, meter: CpuMeter) -> list[Phase]:
    clients = clients_for(base, key, args.concurrency)
    seed(clients[0])
    warm_up(clients)
    deadline = time.monotonic() + args.max_seconds
    run = lambda name, requests: run_phase(  # noqa: E731
        name, requests, args.concurrency, deadline, clients, meter)
    routes, n = "/api/v1/http-routes", args.requests
    healthz = run("healthz", [("GET", "/healthz", None)] * n)
    one_row = run("one-row", [("POST", "/bench/one-row", encoded({"kind": "bench", "name": f"w{i}"}))
                              for i in range(n)])
    creates = run("create", [("POST", routes, encoded(route_body(i))) for i in range(n)])
    # Update only what was created (the cap may have cut the creates short);
    # weights cycle 1..89, never the 90 they were created with, so every PATCH changes the route.
    created = max(creates.done, 1)
    updates = run("update", [("PATCH", f"{routes}/r{i % created}",
                              encoded({"rules": route_body(i, weight=1 + i % 89)["rules"]})) for i in range(n)])
    return [healthz, one_row, creates, updates]


# --- the report -------------------------------------------------------------------------------------------------


PEERS = {"healthz": "(floor)", "one-row": "(peer)"}


def aim(phase: Phase) -> str:
    if phase.name in PEERS:
        return PEERS[phase.name]
    row = phase.summary()
    met = row["per_sec"] >= AIM_WRITES_PER_SEC and row["p99_ms"] < AIM_P99_MS
    return f"{'met' if met else 'NOT met'} (>= {AIM_WRITES_PER_SEC}/s, p99 < {AIM_P99_MS:.0f} ms)"


def print_table(phases: list[Phase]):
    print(f"\n{'phase':<8} {'requests':>8} {'per s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'CPU ms per request: api':>24} {'pg':>5} {'client':>6}  aim")
    for phase in phases:
        row = phase.summary()
        cpu = row["cpu_ms_per_request"]
        capped = f"  [capped at {row['requests']}/{row['planned']}]" if phase.capped else ""
        print(f"{row['phase']:<8} {row['requests']:>8} {row['per_sec']:>8.1f} {row['p50_ms']:>8.1f} "
              f"{row['p99_ms']:>8.1f} {row['max_ms']:>8.1f} {cpu['api']:>24.1f} {cpu['postgres']:>5.1f} "
              f"{cpu['client']:>6.1f}  {aim(phase)}{capped}")


def report_failures(phases: list[Phase]) -> bool:
    failed = False
    for phase in phases:
        if phase.failures:
            failed = True
            counts = {}
            for _, status, _ in phase.failures:
                counts[status] = counts.get(status, 0) + 1
            i, status, body = phase.failures[0]
            print(f"FAILED: {phase.name}: {len(phase.failures)} non-2xx responses {counts}; "
                  f"first (request {i}): {status} {body}", file=sys.stderr)
    return failed


def tail(log, size: int = 3000) -> str:
    log.flush()
    log.seek(0)
    return log.read()[-size:]


def main(argv=None) -> int:
    args = parse_args(argv)
    bench_url = recreate_database(args.database_url)
    env = {**os.environ, "DATABASE_URL": bench_url, "REDIS_URL": args.redis_url,
           "API_KEY_RATE": "1000000/min",  # the bench measures writes, not the per-key limit
           "DJANGO_SETTINGS_MODULE": BENCH_SETTINGS, "DEBUG": "", "LOG_LEVEL": "WARNING",
           # Database connections outlive the run, so the Postgres backends the CPU
           # meter reads are the ones that did the work (production renews them
           # every 60 s, a cost too small to matter here).
           "DB_CONN_MAX_AGE": str(int(args.max_seconds) + 120)}
    key = migrate_and_make_tenant(env, bench_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # Other work on the machine skews every figure; say how busy it was.
    load = os.getloadavg()[0]
    print(f"interlock api: {args.workers} workers x {args.threads} threads on {base}; "
          f"clients: {args.concurrency} threads, {args.requests} requests per phase; "
          f"database {BENCH_DATABASE}, redis {args.redis_url}; "
          f"load average {load:.2f} on {os.cpu_count()} cores before the run", flush=True)
    with tempfile.TemporaryFile("w+") as log:
        with serving(env, port, args, log) as server:
            meter = CpuMeter(server.pid, bench_url)
            try:
                phases = run_load(base, key, args, meter)
            finally:
                meter.close()
        server_log = tail(log)
    print_table(phases)
    if args.json:
        config = {key: getattr(args, key) for key in ("requests", "concurrency", "workers", "threads", "max_seconds")}
        config.update(cores=os.cpu_count(), load_average_before=round(load, 2))
        with open(args.json, "w") as out:
            json.dump({"config": config, "phases": [phase.summary() for phase in phases]}, out, indent=2)
    if report_failures(phases):
        print(f"server log (last 3000 characters):\n{server_log}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
