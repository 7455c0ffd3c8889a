"""The API client against a small real HTTP server: throttling, errors, If-Match."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from terraform.provider.client import ApiError, Client


class Scripted:
    """A loopback server answering each request with the next scripted (status, headers, body)."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.seen = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_request(self):
                length = int(self.headers.get("Content-Length") or 0)
                outer.seen.append((self.command, self.path, dict(self.headers), self.rfile.read(length)))
                status, headers, body = outer.answers.pop(0)
                payload = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(payload))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = do_request

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_throttled_requests_wait_and_are_retried():
    answers = [(429, {"Retry-After": "0"}, {"code": "throttled", "message": "slow down"}), (200, {}, {"name": "m"})]
    with Scripted(answers) as api:
        assert Client(api.url + "/api/v1/", "k").get("meshes", "m") == {"name": "m"}
    assert [path for _, path, _, _ in api.seen] == ["/api/v1/meshes/m", "/api/v1/meshes/m"]
    assert api.seen[0][2]["Authorization"] == "Bearer k"


def test_updates_send_if_match_and_errors_keep_their_fields():
    error = {"code": "invalid", "message": "bad", "errors": [{"field": "rules[0]", "code": "required", "message": "x"}]}
    with Scripted([(400, {}, error)]) as api, pytest.raises(ApiError) as raised:
        Client(api.url, "k").replace("http-routes", "r", {"name": "r"}, etag="abc")
    assert api.seen[0][2]["If-Match"] == '"abc"'
    assert json.loads(api.seen[0][3]) == {"name": "r"}
    assert (raised.value.status, raised.value.code, raised.value.errors) == (400, "invalid", error["errors"])


def test_an_unreachable_api_is_an_error_naming_it():
    with Scripted([]) as api:
        url = api.url
    with pytest.raises(ApiError, match="Could not reach the Interlock API at http://127.0.0.1"):
        Client(url, "k").get("meshes", "m")
