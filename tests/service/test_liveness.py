"""Liveness, readiness, and the published API description."""
import json

import pytest
import yaml
from django.test import Client


@pytest.fixture
def anonymous():
    return Client()


def test_healthz(anonymous):
    response = anonymous.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_checks_the_database_and_the_notice_bus(db, anonymous):
    response = anonymous.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "notices": "ok"}


def test_readyz_is_503_when_the_notice_bus_is_down(db, anonymous, monkeypatch):
    from service import liveness

    class DeadBus:
        def ping(self):
            raise ConnectionError("down")

    monkeypatch.setattr(liveness, "get_bus", lambda: DeadBus())
    response = anonymous.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["checks"] == {"database": "ok", "notices": "error: ConnectionError"}


def test_health_endpoints_need_no_api_key(db, anonymous):
    anonymous.defaults["HTTP_AUTHORIZATION"] = "Bearer garbage"
    assert anonymous.get("/healthz").status_code == 200
    assert anonymous.get("/readyz").status_code == 200


def check_document(document):
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "Interlock API"
    paths = document["paths"]
    for path in (
        "/api/v1/http-routes/",
        "/api/v1/meshes/",
        "/api/v1/endpoint-groups/{name}/attach/",
        "/api/v1/api-keys/",
        "/api/v1/node-tokens/",
        "/api/v1/tenant",
    ):
        assert any(p.rstrip("/") == path.rstrip("/") for p in paths), (path, sorted(paths))
    http_routes = next(item for p, item in paths.items() if p.rstrip("/") == "/api/v1/http-routes")
    assert {"get", "post"} <= set(http_routes)


def test_schema_is_an_openapi_document(db, anonymous):
    response = anonymous.get("/api/v1/schema/")
    assert response.status_code == 200
    check_document(yaml.safe_load(response.content))

    as_json = anonymous.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert as_json.status_code == 200
    check_document(json.loads(as_json.content))


def test_docs_are_an_html_page(db, anonymous):
    response = anonymous.get("/api/v1/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "<html" in page.lower()
    assert "swagger" in page.lower()
    assert "/api/v1/schema/" in page


def test_redoc_is_an_html_page(db, anonymous):
    response = anonymous.get("/api/v1/redoc/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "/api/v1/schema/" in response.content.decode()
