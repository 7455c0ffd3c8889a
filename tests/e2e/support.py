"""What the end-to-end tests share besides fixtures: writing policy through
the API, sending requests through Envoy, and waiting with a deadline."""
from __future__ import annotations

import http.client
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def create(api, collection: str, body: dict) -> dict:
    response = api.post(f"/api/v1/{collection}", body, format="json")
    assert response.status_code == 201, (collection, response.json())
    return response.json()


def patch(api, path: str, body: dict) -> dict:
    response = api.patch(f"/api/v1/{path}", body, format="json")
    assert response.status_code == 200, (path, response.json())
    return response.json()


def post(api, path: str, body: dict) -> dict:
    response = api.post(f"/api/v1/{path}", body, format="json")
    assert response.status_code == 200, (path, response.json())
    return response.json()


def endpoint_group(name: str, backend, cloud="aws", region="us-east-1") -> dict:
    """An endpoint group holding one loopback backend."""
    return {"name": name, "locality": {"cloud": cloud, "region": region, "zone": f"{region}a"},
            "endpoints": [{"address": backend.host, "port": backend.port}]}


def service(name: str, mesh: str, *groups: str, protocol="HTTP") -> dict:
    return {"name": name, "mesh": mesh, "protocol": protocol,
            "backends": [{"endpoint_group": group} for group in groups]}


def to(*destinations: str | tuple[str, int]) -> dict:
    """A route action sending to services (names, or (name, weight) pairs)."""
    pairs = [d if isinstance(d, tuple) else (d, 1) for d in destinations]
    return {"destinations": [{"service_name": name, "weight": weight} for name, weight in pairs]}


class Answer:
    def __init__(self, status: int, body: bytes):
        self.status = status
        self.body = body

    @property
    def backend(self) -> str | None:
        """The name of the backend that answered (tests/e2e backends say it), else None."""
        try:
            return json.loads(self.body)["backend"]
        except (ValueError, KeyError, TypeError):
            return None

    def __repr__(self):
        return f"Answer({self.status}, {self.body[:200]!r})"


def send(port: int, host: str, path: str = "/", headers: dict | None = None, timeout=5.0) -> Answer:
    """One HTTP/1.1 request to Envoy's listener on 127.0.0.1:port, on a new connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": host, **(headers or {})})
        response = connection.getresponse()
        return Answer(response.status, response.read())
    finally:
        connection.close()


def try_send(port: int, host: str, path: str = "/", headers: dict | None = None) -> Answer | None:
    """As send(), None while nothing listens yet."""
    try:
        return send(port, host, path, headers)
    except OSError:
        return None


def wait_for(condition, timeout: float = 10.0, what: str = "", interval: float = 0.01):
    """condition()'s first truthy result within timeout seconds; AssertionError
    (naming `what` and the last result or failure) if none comes."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            result = condition()
        except (AssertionError, OSError) as error:
            result, last = None, error
        else:
            last = result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what or condition} (last: {last!r})")
        time.sleep(interval)


def timed(condition, timeout: float = 10.0, what: str = "") -> float:
    """Seconds until condition() is first true (asserting it is within timeout)."""
    start = time.monotonic()
    wait_for(condition, timeout, what)
    return time.monotonic() - start


def proxy_status(api, name: str, mesh: str) -> dict:
    """The proxies API's record of one proxy: per type {version_sent, version_acked, nack}."""
    response = api.get(f"/api/v1/proxies/{name}", {"mesh": mesh})
    assert response.status_code == 200, response.json()
    return {entry["type"]: entry for entry in response.json()["xds"]}


class GrpcClientProcess:
    """tests/e2e/grpc_client.py in a subprocess: call() makes one RPC and returns what it printed."""

    def __init__(self, target: str, bootstrap: dict, stderr_path: Path):
        env = {key: value for key, value in os.environ.items() if not key.startswith("GRPC_XDS_BOOTSTRAP")}
        env["GRPC_XDS_BOOTSTRAP_CONFIG"] = json.dumps(bootstrap)
        self.stderr_path = stderr_path
        with open(stderr_path, "w") as stderr:  # grpc's own log, for when something fails
            self.process = subprocess.Popen([sys.executable, "-m", "tests.e2e.grpc_client", target], cwd=ROOT,
                                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                                            text=True)
        self._lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def call(self, timeout=10.0) -> str:
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        line = self._lines.get(timeout=timeout)
        assert line is not None, f"the gRPC client exited with {self.process.wait()}: {self.stderr_path.read_text()}"
        return line

    def stop(self):
        self.process.kill()
        self.process.wait()
