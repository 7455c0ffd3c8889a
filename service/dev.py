"""`interlock dev`: the whole control plane in one process, on an SQLite file
and the in-process notice bus, with nothing else to start: the API, an xDS
replica, and a health worker (every region's queue) and the beat on Celery's
in-memory broker. `--demo` (`make demo`) adds a demo tenant written through
the API, two demo backends health-checked on their real ports, a real Envoy
in the demo mesh, and a command that shows the route's split."""
import contextlib
import http.client
import json
import os
import threading
import time
import traceback
import urllib.request
from pathlib import Path

# The demo's real data plane: the node its Envoy runs as, the host its route
# answers, and how many requests the printed command sends.
DEMO_NODE = "demo-envoy"
DEMO_HOST = "shop.demo"
DEMO_REQUESTS = 100
# The dev worker's threads: each probes one batch at a time.
DEV_WORKER_THREADS = 4
# How often the dev worker looks at the in-memory broker's queues (kombu's
# default is a second, as long as the shortest round's expiry).
DEV_BROKER_POLL_SEC = 0.05


def use_dev_environment():
    state = Path(os.environ.get("INTERLOCK_STATE_DIR", Path.cwd() / "var"))
    state.mkdir(parents=True, exist_ok=True)
    os.environ["INTERLOCK_STATE_DIR"] = str(state)
    os.environ["DATABASE_URL"] = f"sqlite:///{state / 'interlock-dev.sqlite3'}"
    os.environ["NOTICE_BUS"] = "inprocess"
    os.environ.pop("REDIS_URL", None)
    # The worker and the beat run in this process, so the broker can too; the
    # demo backends (and a developer's own) listen on loopback.
    os.environ["CELERY_BROKER_URL"] = "memory://localhost/"
    os.environ.setdefault("PROBE_ALLOW_LOOPBACK", "1")


def serve(host: str, port: int):
    from django.core.servers.basehttp import run as run_wsgi

    from service.wsgi import application

    run_wsgi(host, port, application, threading=True)


def run(host: str, port: int, demo: bool = False, xds_port: int = 18000, proxy_port: int = 15001) -> int:
    from django.core.management import call_command

    from service.xds.replica import ReplicaConfig, ReplicaThread

    call_command("migrate", verbosity=0, interactive=False)
    base = f"http://{host}:{port}"
    # The xDS server on its own event loop, fed by the in-process notice bus.
    xds = ReplicaThread(ReplicaConfig(host, xds_port, replica="dev"))
    replica = xds.start()
    print(f"Interlock dev control plane: API {base}/api/v1/ (docs {base}/api/v1/docs/), "
          f"xDS {host}:{replica.port}", flush=True)
    with contextlib.ExitStack() as running:  # Ctrl-C stops everything, Envoy first
        running.callback(xds.stop)
        running.enter_context(HealthWorkers())
        if demo:
            plane = running.enter_context(DemoDataPlane(f"{host}:{replica.port}", proxy_port))
            threading.Thread(target=seed_demo, args=(base, plane), daemon=True).start()
        try:
            serve(host, port)
        except KeyboardInterrupt:  # Ctrl-C is how it is meant to stop
            print("Stopping.", flush=True)
    return 0


class HealthWorkers:
    """A Celery worker consuming every region's queue, in threads, and the beat
    in a thread beside it: the same tasks as `interlock worker` and `interlock
    beat` run, on the in-memory broker. One beat, so no beat lock."""

    def __init__(self):
        from celery.beat import EmbeddedService
        from django.conf import settings

        from workers.celery import ROUNDS_QUEUE, app, region_queue

        queues = [region_queue(region) for region in settings.HEALTH_REGIONS] + [ROUNDS_QUEUE]
        app.conf.broker_transport_options = {"polling_interval": DEV_BROKER_POLL_SEC}
        self.worker = app.WorkController(hostname="dev@%h", queues=queues, pool_cls="threads",
                                         concurrency=DEV_WORKER_THREADS)
        self.beat = EmbeddedService(app, thread=True, scheduler_cls="celery.beat:Scheduler")

    def __enter__(self):
        threading.Thread(target=self.worker.start, name="health-worker", daemon=True).start()
        self.beat.start()
        return self

    def __exit__(self, *exc):
        self.beat.stop()
        self.worker.stop()


class Client:
    def __init__(self, base: str, key: str):
        self.base, self.key = base, key

    def call(self, method: str, path: str, body=None):
        request = urllib.request.Request(
            f"{self.base}/api/v1/{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")


def wait_until_up(base: str):
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{base}/healthz", timeout=1)
            return
        except OSError:
            threading.Event().wait(0.1)
    raise RuntimeError("the dev API did not come up")


def seed_demo(base: str, plane: "DemoDataPlane"):
    """A demo tenant's mesh, written through the API as a user would, then a
    canary weight change, the revision diff that shows it, and a real Envoy
    in the mesh splitting traffic between the two demo backends."""
    try:
        key, client = demo_tenant(base)
        if not client.call("GET", "meshes")["results"]:
            for path, body in demo_policy():
                client.call("POST", path, body)
        plane.point_mesh_here(client)
        weights, revision, changes = change_canary_weights(client)
        plane.start_envoy(client)
    except Exception:  # the control plane keeps running; say why the demo did not
        print(f"The demo could not start:\n{traceback.format_exc()}", flush=True)
        return
    print(f"\nDemo tenant 'demo' is ready. Its API key: {key}\n"
          f"Revision {revision} of mesh 'demo' changed the canary weights to {weights}:\n"
          f"{json.dumps(changes['changed'], indent=2)}\n\nLook around:\n"
          f"  curl -H 'Authorization: Bearer {key}' {base}/api/v1/http-routes/shop\n"
          f"  curl -H 'Authorization: Bearer {key}' {base}/api/v1/meshes/demo/revisions\n"
          f"  curl -H 'Authorization: Bearer {key}' {base}/api/v1/proxies/{DEMO_NODE}\n"
          f"  curl -H 'Authorization: Bearer {key}' {base}/api/v1/backend-services/shop-v1/health\n\n"
          f"A real Envoy ({DEMO_NODE}) serves the mesh on 127.0.0.1:{plane.proxy_port}. Its route for "
          f"{DEMO_HOST} splits requests between the backends shop-v1 and shop-v2 by the weights "
          f"{weights[0]}/{weights[1]}; send {DEMO_REQUESTS} and count who answered:\n"
          f"  {plane.command()}\n"
          f"Change the weights (PATCH http-routes/shop) and run it again. Press Ctrl-C to stop.", flush=True)


def demo_tenant(base: str) -> tuple[str, Client]:
    """The demo tenant (made on the first run) and a new owner API key of it."""
    from service.tenants.models import Tenant
    from service.tenants.services import create_tenant, issue_api_key

    wait_until_up(base)
    tenant = Tenant.objects.filter(name="demo").first()
    if tenant is None:
        tenant, key = create_tenant("demo")
    else:
        key = issue_api_key(tenant, f"demo-{os.getpid()}", role="owner")
    return key.plaintext, Client(base, key.plaintext)


def change_canary_weights(client: Client):
    """Flips the shop route between 90/10 and 50/50: the weights, the revision, its diff."""
    route = client.call("GET", "http-routes/shop")
    weights = [90, 10] if route["rules"][0]["action"]["destinations"][0]["weight"] != 90 else [50, 50]
    for destination, weight in zip(route["rules"][0]["action"]["destinations"], weights):
        destination["weight"] = weight
    client.call("PATCH", "http-routes/shop", {"rules": route["rules"]})
    revision = client.call("GET", "meshes/demo/revisions")["results"][0]["number"]
    return weights, revision, client.call("GET", f"meshes/demo/revisions/{revision}/diff")


class DemoDataPlane:
    """What `--demo` runs beside the control plane: the two backends the demo
    mesh routes to (shop-v1, shop-v2) and a real Envoy in that mesh, started
    from the bootstrap `client.bootstrap` generates. Leaving stops them all."""

    def __init__(self, xds_server: str, proxy_port: int):
        from service.demo_backends import HttpBackend

        self.xds_server = xds_server
        self.proxy_port = proxy_port
        self.backends = {name: HttpBackend(name) for name in ("shop-v1", "shop-v2")}
        self.envoy = None

    def __enter__(self):
        for backend in self.backends.values():
            backend.__enter__()
        return self

    def __exit__(self, *exc):
        if self.envoy is not None:
            self.envoy.stop()
        for backend in self.backends.values():
            backend.__exit__(*exc)

    def point_mesh_here(self, client: Client):
        """The mesh's listener on this run's proxy port, each service's endpoint at
        this run's backend (their ports change from run to run)."""
        client.call("PATCH", "meshes/demo", {"interception_port": self.proxy_port})
        for group, name in (("shop-v1-east", "shop-v1"), ("shop-v2-west", "shop-v2")):
            backend = self.backends[name]
            client.call("PATCH", f"endpoint-groups/{group}",
                        {"endpoints": [{"address": backend.host, "port": backend.port}]})

    def start_envoy(self, client: Client, timeout: float = 30.0):
        """Envoy with a new node token of the demo mesh, once it serves the demo route."""
        from client import envoy
        from client.bootstrap import BootstrapOptions, envoy_bootstrap

        token = client.call("POST", "node-tokens", {"name": f"{DEMO_NODE}-{time.time_ns()}", "mesh": "demo"})
        options = BootstrapOptions(server=self.xds_server, tenant="demo", mesh="demo", node=DEMO_NODE,
                                   token=token["token"], cloud="aws", region="us-east-1", zone="us-east-1a",
                                   admin_port=0)
        path = Path(os.environ["INTERLOCK_STATE_DIR"]) / "demo-envoy.json"
        path.unlink(missing_ok=True)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:  # holds the token
            json.dump(envoy_bootstrap(options), file, indent=2)
        self.envoy = envoy.start(path)
        self.envoy.wait_ready(timeout)
        deadline = time.monotonic() + timeout
        while not self._serves():
            if time.monotonic() > deadline:
                raise RuntimeError(f"Envoy does not serve {DEMO_HOST} on 127.0.0.1:{self.proxy_port}:\n"
                                   f"{self.envoy.log()[-4000:]}")
            time.sleep(0.1)

    def _serves(self) -> bool:
        connection = http.client.HTTPConnection("127.0.0.1", self.proxy_port, timeout=2)
        try:
            connection.request("GET", "/", headers={"Host": DEMO_HOST})
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    def command(self) -> str:
        """A shell command that sends requests through Envoy and counts the backends that answered."""
        return (f"for i in $(seq {DEMO_REQUESTS}); do curl -s -H 'Host: {DEMO_HOST}' "
                f"http://127.0.0.1:{self.proxy_port}/; echo; done "
                """| grep -o '"backend": "[^"]*"' | sort | uniq -c""")


def demo_group(name, region, octet):
    return {
        "name": name,
        "locality": {"cloud": "aws", "region": region, "zone": f"{region}a"},
        "max_rate_per_endpoint": 100,
        "endpoints": [{"address": f"127.0.0.{octet}", "port": 8080}],
    }


def demo_policy():
    return [
        ("meshes", {"name": "demo", "description": "The demo tenant's mesh"}),
        # No port: the dev worker probes each endpoint on its own port, the
        # backend's real one on every run.
        ("health-checks", {"name": "http-ok", "http_health_check": {"request_path": "/healthz"}}),
        ("endpoint-groups", demo_group("shop-v1-east", "us-east-1", 11)),
        ("endpoint-groups", demo_group("shop-v2-west", "us-west-2", 12)),
        ("backend-services", {"name": "shop-v1", "mesh": "demo", "health_checks": ["http-ok"],
                              "backends": [{"endpoint_group": "shop-v1-east"}]}),
        ("backend-services", {"name": "shop-v2", "mesh": "demo", "health_checks": ["http-ok"],
                              "backends": [{"endpoint_group": "shop-v2-west"}]}),
        ("http-routes", {"name": "shop", "meshes": ["demo"], "hostnames": ["shop.demo"], "rules": [
            {"matches": [{"prefix_match": "/"}],
             "action": {"destinations": [{"service_name": "shop-v1", "weight": 90},
                                         {"service_name": "shop-v2", "weight": 10}],
                        "timeout_sec": 15, "retry_policy": {"retry_conditions": ["5xx"], "num_retries": 2}}},
        ]}),
    ]
