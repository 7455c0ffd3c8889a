"""What no DRF view answers is still the API's JSON error shape: an error
raised in a middleware goes to Django's handler500 (service/urls.py)."""
import pytest
from django.db import OperationalError
from django.test import Client

FAILURES = {"database": OperationalError("server closed the connection unexpectedly"),
            "bug": RuntimeError("a bug")}


class FailingMiddleware:
    """Fails every request with the error its X-Fail header names."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        raise FAILURES[request.headers["X-Fail"]]


@pytest.fixture
def failing(settings):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "tests.service.test_errors.FailingMiddleware"]
    return Client(raise_request_exception=False)


def test_a_database_error_outside_a_view_is_a_503_in_json(failing):
    response = failing.get("/api/v1/meshes", headers={"X-Fail": "database"})
    assert response.status_code == 503
    assert response.json() == {"code": "unavailable", "message": "The database is not answering; retry in 5 seconds.",
                               "errors": []}
    assert response.headers["Retry-After"] == "5"


def test_any_other_error_outside_a_view_is_a_500_in_json(failing):
    response = failing.get("/api/v1/meshes", headers={"X-Fail": "bug"})
    assert response.status_code == 500
    assert response.json()["code"] == "server_error"
    assert response.json()["errors"] == []
