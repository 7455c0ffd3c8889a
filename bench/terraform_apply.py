"""Terraform apply, re-plan and destroy of 100 Interlock resources, beside the
same writes made straight to the REST API.

    python bench/terraform_apply.py [--resources 100] [--parallelism 10] [--json out.json]

Makes its own database (``interlock_bench_terraform``, dropped and recreated on
the server DATABASE_URL names), migrates it and starts ``interlock api``
(gunicorn, as `interlock api` runs it) as bench/api_write.py does, builds the provider's
filesystem mirror in a temporary directory, and measures:

    api create / api delete   the floor: the same objects' POSTs, then DELETEs,
                              from --parallelism keep-alive client threads,
                              dependencies first (mesh, groups, services, routes)
    terraform apply           creating them from HCL (`count`), -parallelism N
    terraform plan            the re-plan after it (refreshes all; must be empty)
    terraform destroy         deleting them

The resources are one mesh and, for each of (N - 1) / 3 services, an endpoint
group, a backend service and an HTTP route. `terraform init` is timed too but
is not part of the comparison. Every step is checked (2xx answers, an empty
re-plan, an empty tenant after destroy); any failure exits 1. The server is
always stopped.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

# The server plumbing of the sibling benchmark (this directory is on sys.path when run as a script).
from api_write import add_server_arguments, free_port, migrate_and_make_tenant, recreate_database, serving
from terraform.provider import mirror

DATABASE = "interlock_bench_terraform"
MESH = "bench"

CONFIG = """
terraform {
  required_providers {
    interlock = { source = "interlock/interlock" }
  }
}
variable "services" { type = number }

resource "interlock_mesh" "bench" {
  name = "%(mesh)s"
}
resource "interlock_endpoint_group" "g" {
  count     = var.services
  name      = "g${count.index}"
  locality  = { cloud = "aws", region = "us-east-1" }
  endpoints = [{ address = "10.0.${floor(count.index / 250)}.${count.index %% 250 + 1}", port = 8080 }]
}
resource "interlock_backend_service" "s" {
  count    = var.services
  name     = "s${count.index}"
  mesh     = interlock_mesh.bench.name
  backends = [{ endpoint_group = interlock_endpoint_group.g[count.index].name }]
}
resource "interlock_http_route" "r" {
  count     = var.services
  name      = "r${count.index}"
  meshes    = [interlock_mesh.bench.name]
  hostnames = ["r${count.index}.bench.example"]
  rules     = [{ action = { destinations = [{ service_name = interlock_backend_service.s[count.index].name }] } }]
}
""" % {"mesh": MESH}


def parse_args(argv=None) -> argparse.Namespace:
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("--resources", type=int, default=100, help="resources to manage (default 100)")
    cli.add_argument("--parallelism", type=int, default=10,
                     help="terraform -parallelism, and the floor's client threads (default 10, terraform's)")
    add_server_arguments(cli)
    cli.add_argument("--database-url", default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/"),
                     help="the Postgres server to use; the database name is always " + DATABASE)
    cli.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/14"))
    cli.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    return cli.parse_args(argv)


# --- the floor: the same writes, straight to the API -------------------------------------------------------------


def levels(services: int) -> list[list[tuple[str, dict]]]:
    """The objects of CONFIG as API bodies, in the order dependencies allow."""
    return [
        [("meshes", {"name": MESH})],
        [("endpoint-groups", {"name": f"g{i}", "locality": {"cloud": "aws", "region": "us-east-1"},
                              "endpoints": [{"address": f"10.0.{i // 250}.{i % 250 + 1}", "port": 8080}]})
         for i in range(services)],
        [("backend-services", {"name": f"s{i}", "mesh": MESH, "backends": [{"endpoint_group": f"g{i}"}]})
         for i in range(services)],
        [("http-routes", {"name": f"r{i}", "meshes": [MESH], "hostnames": [f"r{i}.bench.example"],
                          "rules": [{"action": {"destinations": [{"service_name": f"s{i}"}]}}]})
         for i in range(services)],
    ]


def in_parallel(calls, threads: int):
    """Run `calls` (each returns a response) from `threads` threads; any non-2xx is fatal."""
    pending, failures, lock = list(calls), [], threading.Lock()
    local = threading.local()

    def worker():
        while True:
            with lock:
                if not pending:
                    return
                call = pending.pop(0)
            response = call(local)
            if not 200 <= response.status_code < 300:
                with lock:
                    failures.append(f"{response.request.method} {response.url}: {response.status_code} "
                                    f"{response.text[:300]}")

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    if failures:
        raise SystemExit(f"{len(failures)} API calls failed; first: {failures[0]}")


def session(local, key: str) -> requests.Session:
    if not hasattr(local, "session"):
        local.session = requests.Session()
        local.session.headers["Authorization"] = f"Bearer {key}"
    return local.session


def api_floor(base: str, key: str, services: int, threads: int) -> dict[str, float]:
    timings = {}
    started = time.perf_counter()
    for level in levels(services):
        in_parallel([lambda local, c=collection, b=body: session(local, key).post(
            f"{base}/api/v1/{c}", json=b, timeout=60) for collection, body in level], threads)
    timings["api create"] = time.perf_counter() - started
    started = time.perf_counter()
    for level in reversed(levels(services)):
        in_parallel([lambda local, c=collection, b=body: session(local, key).delete(
            f"{base}/api/v1/{c}/{b['name']}", timeout=60) for collection, body in level], threads)
    timings["api delete"] = time.perf_counter() - started
    return timings


# --- terraform ----------------------------------------------------------------------------------------------------


def terraform(workdir: Path, env: dict, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    done = subprocess.run(["terraform", *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=1800)
    return time.perf_counter() - started, done


def checked(step: str, result, allowed=(0,)) -> float:
    seconds, done = result
    if done.returncode not in allowed:
        raise SystemExit(f"terraform {step} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds


def terraform_cycle(base: str, key: str, services: int, parallelism: int, scratch: Path) -> dict[str, float]:
    home = scratch / "home"
    home.mkdir()
    mirror.build(scratch / "mirror")
    (scratch / "terraformrc").write_text(mirror.cli_config(scratch / "mirror"))
    workdir = scratch / "work"
    workdir.mkdir()
    (workdir / "main.tf").write_text(CONFIG)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "TF_CLI_CONFIG_FILE": str(scratch / "terraformrc"),
           "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", "INTERLOCK_API_URL": base, "INTERLOCK_API_KEY": key,
           "TF_VAR_services": str(services)}
    common = ("-input=false", "-no-color", f"-parallelism={parallelism}")
    timings = {"terraform init": checked("init", terraform(workdir, env, "init", "-input=false", "-no-color"))}
    timings["terraform apply"] = checked("apply", terraform(workdir, env, "apply", "-auto-approve", *common))
    timings["terraform plan"] = checked("plan", terraform(workdir, env, "plan", "-detailed-exitcode", *common))
    timings["terraform destroy"] = checked("destroy", terraform(workdir, env, "destroy", "-auto-approve", *common))
    return timings


def tenant_is_empty(base: str, key: str) -> bool:
    headers = {"Authorization": f"Bearer {key}"}
    return all(requests.get(f"{base}/api/v1/{collection}", headers=headers, timeout=30).json()["count"] == 0
               for collection in ("meshes", "endpoint-groups", "backend-services", "http-routes"))


# --- the report ---------------------------------------------------------------------------------------------------


def print_table(timings: dict[str, float], resources: int):
    floor = {"terraform apply": timings["api create"], "terraform destroy": timings["api delete"]}
    print(f"\n{'step':<18} {'seconds':>8} {'ms/resource':>12}  vs the API floor")
    for step in ("api create", "api delete", "terraform init", "terraform apply", "terraform plan",
                 "terraform destroy"):
        seconds = timings[step]
        ratio = f"{seconds / floor[step]:.1f}x" if step in floor else ("(floor)" if step.startswith("api") else "")
        print(f"{step:<18} {seconds:>8.2f} {seconds * 1000 / resources:>12.0f}  {ratio}")


def main(argv=None) -> int:
    args = parse_args(argv)
    services = (args.resources - 1) // 3
    resources = 1 + 3 * services
    bench_url = recreate_database(args.database_url, DATABASE)
    env = {**os.environ, "DATABASE_URL": bench_url, "REDIS_URL": args.redis_url, "API_KEY_RATE": "1000000/min",
           "DEBUG": "", "LOG_LEVEL": "WARNING"}
    key = migrate_and_make_tenant(env, bench_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    load = os.getloadavg()[0]
    print(f"{resources} resources (1 mesh, {services} x endpoint group + backend service + HTTP route); "
          f"interlock api {args.workers} workers x {args.threads} threads on {base}; parallelism "
          f"{args.parallelism}; load average {load:.2f} on {os.cpu_count()} cores before the run", flush=True)
    with tempfile.TemporaryFile("w+") as log, tempfile.TemporaryDirectory() as scratch, \
            serving(env, port, args, log):
        timings = api_floor(base, key, services, args.parallelism)
        timings.update(terraform_cycle(base, key, services, args.parallelism, Path(scratch)))
        if not tenant_is_empty(base, key):
            raise SystemExit("objects are left in the tenant after terraform destroy")
    print_table(timings, resources)
    if args.json:
        config = {"resources": resources, "parallelism": args.parallelism, "workers": args.workers,
                  "threads": args.threads, "cores": os.cpu_count(), "load_average_before": round(load, 2)}
        with open(args.json, "w") as out:
            json.dump({"config": config, "seconds": {k: round(v, 3) for k, v in timings.items()}}, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
