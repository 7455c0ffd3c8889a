"""`interlock dev`: the whole control plane in one process, on an SQLite file
and the in-process notice bus, with nothing else to start."""
import json
import os
import threading
import urllib.request
from pathlib import Path


def use_dev_environment():
    state = Path(os.environ.get("INTERLOCK_STATE_DIR", Path.cwd() / "var"))
    state.mkdir(parents=True, exist_ok=True)
    os.environ["INTERLOCK_STATE_DIR"] = str(state)
    os.environ["DATABASE_URL"] = f"sqlite:///{state / 'interlock-dev.sqlite3'}"
    os.environ["NOTICE_BUS"] = "inprocess"
    os.environ.pop("REDIS_URL", None)


def serve(host: str, port: int):
    from django.core.servers.basehttp import run as run_wsgi

    from service.wsgi import application

    run_wsgi(host, port, application, threading=True)


def run(host: str, port: int, demo: bool = False) -> int:
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    base = f"http://{host}:{port}"
    print(f"Interlock dev control plane: API {base}/api/v1/ (docs {base}/api/v1/docs/)", flush=True)
    if demo:
        threading.Thread(target=seed_demo, args=(base,), daemon=True).start()
    serve(host, port)
    return 0


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


def seed_demo(base: str):
    """A demo tenant's mesh, written through the API as a user would, then a
    canary weight change, and the revision diff that shows it."""
    from service.tenants.models import Tenant
    from service.tenants.services import create_tenant, issue_api_key

    wait_until_up(base)
    tenant = Tenant.objects.filter(name="demo").first()
    if tenant is None:
        tenant, key = create_tenant("demo")
    else:
        key = issue_api_key(tenant, f"demo-{os.getpid()}", role="owner")
    client = Client(base, key.plaintext)
    if not client.call("GET", "meshes")["results"]:
        for path, body in demo_policy():
            client.call("POST", path, body)
    route = client.call("GET", "http-routes/shop")
    weights = [90, 10] if route["rules"][0]["action"]["destinations"][0]["weight"] != 90 else [50, 50]
    for destination, weight in zip(route["rules"][0]["action"]["destinations"], weights):
        destination["weight"] = weight
    client.call("PATCH", "http-routes/shop", {"rules": route["rules"]})
    revision = client.call("GET", "meshes/demo/revisions")["results"][0]["number"]
    changes = client.call("GET", f"meshes/demo/revisions/{revision}/diff")
    print(f"\nDemo tenant 'demo' is ready. Its API key: {key.plaintext}\n"
          f"Revision {revision} of mesh 'demo' changed the canary weights to {weights}:\n"
          f"{json.dumps(changes['changed'], indent=2)}\n\nLook around:\n"
          f"  curl -H 'Authorization: Bearer {key.plaintext}' {base}/api/v1/http-routes/shop\n"
          f"  curl -H 'Authorization: Bearer {key.plaintext}' {base}/api/v1/meshes/demo/revisions\n"
          f"Press Ctrl-C to stop.", flush=True)


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
        ("health-checks", {"name": "http-ok", "http_health_check": {"port": 8080, "request_path": "/healthz"}}),
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
