"""Loopback HTTP backends that say who they are: the two backends of
`interlock dev --demo`, and the HTTP backends of the end-to-end tests.

A backend answers every request with JSON naming itself and echoing what it
received, so a caller can tell which backend a request reached and what Envoy
did to it on the way (rewrites, added headers). It can be told to fail its next
requests, to show retries.
"""
from __future__ import annotations

import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


# What a backend remembers of the requests it saw (the demo runs for hours).
REMEMBERED_REQUESTS = 10_000


class HttpBackend:
    """An HTTP/1.1 server on host:port (0: a free port) in a thread; `with` starts and stops it."""

    def __init__(self, name: str, host: str = "127.0.0.1", port: int = 0):
        self.name = name
        self.requests: deque[dict] = deque(maxlen=REMEMBERED_REQUESTS)
        self._failures_left = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self.host, self.port = self._server.server_address[:2]
        # A short poll interval: stopping waits for the serving loop to look.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, count: int, status: int = 503):
        with self._lock:
            self._failures_left, self._failure_status = count, status

    def _take_failure(self) -> int | None:
        with self._lock:
            if self._failures_left <= 0:
                return None
            self._failures_left -= 1
            return self._failure_status

    def _handler(self):
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                seen = {"backend": backend.name, "path": self.path, "headers": dict(self.headers.items())}
                with backend._lock:
                    backend.requests.append(seen)
                status = backend._take_failure() or 200
                body = json.dumps(seen).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_PUT = do_DELETE = do_GET

            def log_message(self, *args):  # tests read .requests, not stderr
                pass

        return Handler
