"""A proxyless gRPC client for the end-to-end tests, run in its own process:
grpcio's xDS client is process-global, so each test gets a fresh one, and its
bootstrap comes from GRPC_XDS_BOOTSTRAP_CONFIG.

    python -m tests.e2e.grpc_client xds:///greeter.test

opens one channel to the target and, for each line read on stdin, calls the
test backends' method once and prints the backend's name (or `error <code>`).
"""
import sys

import grpc

from tests.e2e.backends import GRPC_METHOD


def main(target: str) -> None:
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(GRPC_METHOD)
        for _ in sys.stdin:
            try:
                print(call(b"", timeout=5).decode(), flush=True)
            except grpc.RpcError as error:
                print(f"error {error.code().name} {error.details()}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
