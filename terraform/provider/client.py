"""The provider's only way to Interlock: the public REST API (docs/api.md)."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import requests

API_PATH = "/api/v1/"
TIMEOUT_SEC = 30
# A key's rate limit answers 429 with Retry-After; a large apply waits it out.
MAX_THROTTLED_RETRIES = 5
MAX_RETRY_AFTER_SEC = 30


@dataclass
class ApiError(Exception):
    """An error answer of the API: {code, message, errors: [{field, code, message}]}."""

    status: int
    code: str
    message: str
    errors: list[dict] = field(default_factory=list)

    def __str__(self):
        return f"{self.status} {self.code}: {self.message}"

    @classmethod
    def from_response(cls, response: requests.Response) -> ApiError:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return cls(response.status_code, "error", response.text[:500] or response.reason or "no body")
        return cls(response.status_code, str(body.get("code", "error")), str(body.get("message", "")),
                   [e for e in body.get("errors") or [] if isinstance(e, dict)])


class Client:
    """JSON over HTTP with the tenant's API key; one keep-alive session per
    thread, since Terraform calls the provider from several threads at once."""

    def __init__(self, url: str, key: str):
        self.base = url.rstrip("/").removesuffix(API_PATH.rstrip("/")) + API_PATH
        self.key = key
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers.update({"Authorization": f"Bearer {self.key}", "Accept": "application/json"})
        return session

    def request(self, method: str, path: str, body: dict | None = None, etag: str | None = None):
        headers = {"If-Match": f'"{etag}"'} if etag else {}
        for attempt in range(MAX_THROTTLED_RETRIES + 1):
            response = self.send(method, path, body, headers)
            if response.status_code != 429 or attempt == MAX_THROTTLED_RETRIES:
                break
            time.sleep(retry_after(response))
        if response.status_code >= 400:
            raise ApiError.from_response(response)
        return response.json() if response.content else None

    def send(self, method: str, path: str, body: dict | None, headers: dict) -> requests.Response:
        try:
            return self.session.request(method, self.base + path, json=body, headers=headers, timeout=TIMEOUT_SEC)
        except requests.RequestException as exc:
            raise ApiError(0, "unreachable", f"Could not reach the Interlock API at {self.base}: {exc}") from exc

    def get(self, collection: str, name: str) -> dict:
        return self.request("GET", f"{collection}/{name}")

    def create(self, collection: str, body: dict) -> dict:
        return self.request("POST", collection, body)

    def replace(self, collection: str, name: str, body: dict, etag: str | None) -> dict:
        return self.request("PUT", f"{collection}/{name}", body, etag)

    def delete(self, collection: str, name: str, etag: str | None = None):
        self.request("DELETE", f"{collection}/{name}", etag=etag)

    def tenant(self) -> dict:
        return self.request("GET", "tenant")


def retry_after(response: requests.Response) -> float:
    try:
        return min(max(float(response.headers.get("Retry-After", "1")), 0.1), MAX_RETRY_AFTER_SEC)
    except ValueError:
        return 1.0
