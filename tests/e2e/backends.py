"""Real loopback backends for end-to-end tests: they say who they are.

The HTTP backend is the demo's (service.demo_backends), re-exported here; the
gRPC backend answers one unary method with its name.
"""
from __future__ import annotations

from concurrent import futures

import grpc

from service.demo_backends import HttpBackend

__all__ = ["GRPC_METHOD", "GrpcBackend", "HttpBackend"]

GRPC_METHOD = "/interlock.test.Echo/Who"


class GrpcBackend:
    """A gRPC server whose one method returns its name; plaintext on loopback."""

    def __init__(self, name: str, host: str = "127.0.0.1"):
        self.name = name
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handler = grpc.method_handlers_generic_handler(
            "interlock.test.Echo", {"Who": grpc.unary_unary_rpc_method_handler(self._who)}
        )
        self._server.add_generic_rpc_handlers((handler,))
        self.host = host
        self.port = self._server.add_insecure_port(f"{host}:0")

    def _who(self, request: bytes, context) -> bytes:
        return self.name.encode()

    def __enter__(self):
        self._server.start()
        return self

    def __exit__(self, *exc):
        self._server.stop(grace=None)
