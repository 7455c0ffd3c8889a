"""From a backend's failure to Envoy's EDS update, with the real pieces:
`interlock worker`, `interlock beat` and `interlock xds` as subprocesses on
Postgres and Redis, a real Envoy, and real loopback backends.

    python bench/health_envoy_failover.py [--repetitions 5] [--interval 1] [--threshold 2] [--json out.json]

Makes its own database (``interlock_bench_health``, dropped and recreated on
the server DATABASE_URL names), writes through the REST API in this process a
backend service of two HTTP backends (each a process of its own) with an HTTP
health check (check_interval_sec --interval, both thresholds --threshold,
one source region), and a route to it; starts one worker of that region, the
beat, the xDS server and one Envoy. Each repetition:

    failure   backend A is killed (SIGKILL) at t0; Envoy's admin /clusters is
              polled (every 5 ms) until A's host has the flag
              /failed_eds_health: the EDS update that took it out, at t1.
              Split at the verdict's changed_at (written by the worker):
                verdict   t0 -> the verdict UNHEALTHY committed (probing, the
                          consecutive failures, the write)
                to Envoy  the verdict -> Envoy holding it (the notice, the
                          replica's EDS, Envoy's update)
    recovery  A is started again on its port; from the moment it listens
              until Envoy's host loses /failed_eds_health.

A kill and a restart each come at a random point of the probe cycle (a
pause of 0 to one interval before each), so the figures spread over where in a round the failure
lands. The floor is the rounds themselves: the threshold-th failed round
starts between (threshold - 1) x interval and threshold x interval after the
failure (the first failed round is the next one to start), so the rounds
alone take up to interval x threshold, the issue's bound less its 2 s; the
same for the recovery, with healthy_threshold. "verdict -> Envoy" is all
Interlock's and Envoy's own.
"""
import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent.parent))
sys.path.insert(0, str(HERE.parent))

from api_write import stop_server  # noqa: E402
from xds_fanout import Api, free_port, setup_django, start_process, wait_for_port  # noqa: E402

from client import envoy  # noqa: E402
from client.bootstrap import BootstrapOptions, envoy_bootstrap  # noqa: E402

BENCH_DATABASE = "interlock_bench_health"
MESH = "bench"
REGION = "bench"
SERVICE = "pair"
# A loopback HTTP backend in a process of its own, until killed.
BACKEND = ("import signal, sys; from service.demo_backends import HttpBackend\n"
           "with HttpBackend(sys.argv[1], port=int(sys.argv[2])): signal.pause()")
POLL_SEC = 0.005


def parse_args(argv=None):
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--repetitions", type=int, default=5)
    cli.add_argument("--interval", type=int, default=1, help="the health check's check_interval_sec")
    cli.add_argument("--threshold", type=int, default=2, help="its healthy and unhealthy thresholds")
    cli.add_argument("--database-url", default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/"))
    cli.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14"))
    cli.add_argument("--json", metavar="PATH")
    return cli.parse_args(argv)


class Backend:
    def __init__(self, name: str):
        self.name, self.port, self.process = name, free_port(), None

    def start(self):
        self.process = start_process(["-c", BACKEND, self.name, str(self.port)])
        wait(self.listening, 15, f"backend {self.name} listening", interval=0.01)

    def listening(self) -> bool:
        import socket

        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def kill(self):
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def wait(condition, timeout: float, what: str, interval: float = POLL_SEC):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not within {timeout}s: {what}")
        time.sleep(interval)


def seed(api: Api, backends: list[Backend], args) -> str:
    api.call("post", "meshes", {"name": MESH, "interception_port": free_port()})
    api.call("post", "health-checks", {"name": SERVICE, "check_interval_sec": args.interval, "timeout_sec": 1,
                                       "healthy_threshold": args.threshold, "unhealthy_threshold": args.threshold,
                                       "source_regions": [REGION], "http_health_check": {}})
    api.call("post", "endpoint-groups", {"name": SERVICE, "locality": {"cloud": "aws", "region": "us-east-1",
                                                                       "zone": "us-east-1a"},
                                         "endpoints": [{"address": "127.0.0.1", "port": b.port} for b in backends]})
    api.call("post", "backend-services", {"name": SERVICE, "mesh": MESH, "health_checks": [SERVICE],
                                          "backends": [{"endpoint_group": SERVICE}]})
    api.call("post", "http-routes", {"name": SERVICE, "meshes": [MESH], "hostnames": ["pair.test"],
                                     "rules": [{"action": {"destinations": [{"service_name": SERVICE}]}}]})
    return api.call("post", "node-tokens", {"name": "bench", "mesh": MESH})["token"]


def health_flags(proxy, port: int) -> str | None:
    """Envoy's health flags for the host 127.0.0.1:port ("healthy", "/failed_eds_health", ...)."""
    status, body = proxy.admin_get("/clusters")
    for line in body.splitlines() if status == 200 else ():
        if f"::127.0.0.1:{port}::health_flags::" in line:
            return line.rsplit("::", 1)[1]
    return None


def verdict_changed_at(port: int):
    from service.health.models import Verdict

    return Verdict.objects.filter(endpoint__port=port).values_list("health", "changed_at").first()


def measure(proxy, backend: Backend, args) -> dict:
    time.sleep(random.uniform(0, args.interval))  # anywhere in the probe cycle
    killed_wall, killed = time.time(), time.monotonic()
    backend.kill()
    wait(lambda: "/failed_eds_health" in (health_flags(proxy, backend.port) or ""), 30, "Envoy taking A out")
    failure = time.monotonic() - killed
    health, changed_at = verdict_changed_at(backend.port)
    assert health == "UNHEALTHY", health
    verdict = changed_at.timestamp() - killed_wall
    time.sleep(random.uniform(0, args.interval))
    backend.start()
    listening = time.monotonic()
    wait(lambda: health_flags(proxy, backend.port) == "healthy", 30, "Envoy taking A back")
    recovery = time.monotonic() - listening
    return {"failure_ms": ms(failure), "verdict_ms": ms(verdict), "to_envoy_ms": ms(failure - verdict),
            "recovery_ms": ms(recovery)}


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return f"{model}, {os.cpu_count()} vCPUs; Python {platform.python_version()}"


def main(argv=None) -> int:
    args = parse_args(argv)
    load_at_start = os.getloadavg()[0]
    setup_django(args, BENCH_DATABASE)
    api = Api()
    backends = [Backend("a"), Backend("b")]
    processes = []
    try:
        for backend in backends:
            backend.start()
        token = seed(api, backends, args)
        xds_port = free_port()
        env = {"LOG_LEVEL": "WARNING", "PROBE_ALLOW_LOOPBACK": "1", "HEALTH_REGIONS": REGION}
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        processes.append(start_process(["-m", "service.cli", "xds", "--port", str(xds_port), "--replica", "bench"],
                                       env=env))
        processes.append(start_process(["-m", "service.cli", "worker", "--region", REGION, "--concurrency", "1"],
                                       env=env, **quiet))
        processes.append(start_process(["-m", "service.cli", "beat"], env=env, **quiet))
        wait_for_port(xds_port, processes[0])
        with tempfile.TemporaryDirectory(prefix="interlock-bench-health-") as workdir:
            options = BootstrapOptions(server=f"127.0.0.1:{xds_port}", tenant="bench", mesh=MESH, node="envoy",
                                       token=token, cloud="aws", region="us-east-1", zone="us-east-1a",
                                       admin_port=0)
            bootstrap = Path(workdir) / "envoy.json"
            bootstrap.write_text(json.dumps(envoy_bootstrap(options)))
            proxy = envoy.start(bootstrap)
            try:
                proxy.wait_admin()
                wait(lambda: all(health_flags(proxy, b.port) == "healthy" for b in backends)
                     and all((verdict_changed_at(b.port) or ("",))[0] == "HEALTHY" for b in backends),
                     60, "Envoy holding both backends, probed HEALTHY")
                rows = []
                for _ in range(args.repetitions):
                    rows.append(measure(proxy, backends[0], args))
                    print(json.dumps(rows[-1]), flush=True)
            finally:
                proxy.stop()
    finally:
        for process in reversed(processes):
            stop_server(process, timeout=20)
        for backend in backends:
            backend.kill()
    results = {"machine": machine(), "load_average_at_start": load_at_start, "interval_sec": args.interval,
               "threshold": args.threshold, "rows": rows}
    print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def print_table(results):
    rows, floor = results["rows"], results["interval_sec"] * results["threshold"] * 1000
    print(f"\nA backend killed -> Envoy's EDS update (check_interval_sec {results['interval_sec']}, thresholds "
          f"{results['threshold']}; {len(rows)} repetitions; {results['machine']}; "
          f"1-minute load {results['load_average_at_start']:.2f})")
    rounds = f"{floor - results['interval_sec'] * 1000:.0f}-{floor:.0f} ms"
    print(f"{'':<28}{'p50 ms':>10}{'max ms':>10}{'min ms':>10}   the rounds alone ((threshold-1..threshold) x interval)")
    for key, label in (("failure_ms", "failure -> Envoy (total)"), ("verdict_ms", "  failure -> verdict"),
                       ("to_envoy_ms", "  verdict -> Envoy"), ("recovery_ms", "listening -> Envoy again")):
        values = [r[key] for r in rows]
        shown_floor = rounds if key in ("failure_ms", "recovery_ms") else ""
        print(f"{label:<28}{statistics.median(values):>10.1f}{max(values):>10.1f}{min(values):>10.1f}   {shown_floor}")


if __name__ == "__main__":
    sys.exit(main())
