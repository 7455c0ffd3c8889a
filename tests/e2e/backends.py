"""Real loopback backends for end-to-end tests: they say who they are.

The HTTP backend is the demo's (service.demo_backends), re-exported here; the
gRPC backend answers one unary method with its name, and grpc.health.v1 (the
server as a whole SERVING). A BackendProcess runs either in a process of its
own, to be killed (SIGKILL: its sockets and connections close at once, as
when a real backend dies) and started again on the same port:

    python -m tests.e2e.backends http|grpc NAME PORT
"""
from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2_grpc

from service.demo_backends import HttpBackend

__all__ = ["GRPC_METHOD", "BackendProcess", "GrpcBackend", "HttpBackend"]

GRPC_METHOD = "/interlock.test.Echo/Who"
ROOT = Path(__file__).resolve().parents[2]
# How long a backend process may take to listen.
START_SEC = 15


class GrpcBackend:
    """A gRPC server whose one method returns its name, with grpc.health.v1; plaintext on loopback."""

    def __init__(self, name: str, host: str = "127.0.0.1", port: int = 0):
        self.name = name
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handler = grpc.method_handlers_generic_handler(
            "interlock.test.Echo", {"Who": grpc.unary_unary_rpc_method_handler(self._who)}
        )
        self._server.add_generic_rpc_handlers((handler,))
        health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), self._server)
        self.host = host
        self.port = self._server.add_insecure_port(f"{host}:{port}")

    def _who(self, request: bytes, context) -> bytes:
        return self.name.encode()

    def __enter__(self):
        self._server.start()
        return self

    def __exit__(self, *exc):
        self._server.stop(grace=None)


class BackendProcess:
    """A backend (kind "http" or "grpc") in a process of its own on 127.0.0.1:port."""

    def __init__(self, kind: str, name: str, port: int, log: Path):
        self.kind, self.name, self.host, self.port, self.log = kind, name, "127.0.0.1", port, log
        self.process: subprocess.Popen | None = None

    def start(self) -> BackendProcess:
        with open(self.log, "a") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "tests.e2e.backends", self.kind, self.name,
                                             str(self.port)], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_SEC
        while not self.listening():
            assert self.process.poll() is None, f"backend {self.name} exited: {self.log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"backend {self.name} not listening within {START_SEC} s"
            time.sleep(0.02)
        return self

    def listening(self) -> bool:
        try:
            socket.create_connection((self.host, self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def kill(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


def serve(kind: str, name: str, port: int) -> None:
    """Serves until SIGTERM or SIGINT (blocked first, so the server's threads leave them to sigwait)."""
    stop = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    with HttpBackend(name, port=port) if kind == "http" else GrpcBackend(name, port=port):
        signal.sigwait(stop)


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2], int(sys.argv[3]))
