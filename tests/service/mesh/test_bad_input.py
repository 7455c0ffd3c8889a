import json
import pytest


@pytest.mark.django_db
def test_probe(api):
    api.raise_request_exception = False
    import logging
    def show(label, r):
        body = r.content.decode()[:300]
        print(f"\n### {label}: {r.status_code} {body}")
    show("mesh", api.post("/api/v1/meshes", {"name": "m1"}, format="json"))
    show("bs mesh nul", api.post("/api/v1/backend-services", {"name": "b", "mesh": "\u0000"}, format="json"))
    show("get nul", api.get("/api/v1/meshes/%00"))
    show("get bigid", api.get("/api/v1/changes/99999999999999999999999"))
    show("rev big", api.get("/api/v1/meshes/m1/revisions/99999999999999999999999"))
    show("rev diff big", api.get("/api/v1/meshes/m1/revisions/1/diff?against=99999999999999999999999"))
    show("rollback big", api.post("/api/v1/meshes/m1/revisions/99999999999999999999999/rollback"))
    show("bs", api.post("/api/v1/backend-services", {"name": "bs1", "mesh": "m1"}, format="json"))
    show("range big", api.post("/api/v1/http-routes", {"name": "r", "meshes": ["m1"], "hostnames": ["a.example"], "rules": [{"matches": [{"header_matches": [{"header": "x", "range_match": {"start": -10**30, "end": 10**30}}]}], "action": {"destinations": [{"service_name": "bs1"}]}}]}, format="json"))
    show("labels int", api.post("/api/v1/meshes", {"name": "m2", "labels": {"a": 1}}, format="json"))
    show("mesh name int", api.post("/api/v1/meshes", {"name": 5}, format="json"))
    show("eg meta key nul", api.post("/api/v1/endpoint-groups", {"name": "eg", "endpoints": [{"address": "10.0.0.1", "port": 80, "metadata": {"\u0000": "x"}}]}, format="json"))
    show("apikey nul", api.post("/api/v1/api-keys", {"name": "\u0000"}, format="json"))
    show("members nul", api.get("/api/v1/members/%00"))
