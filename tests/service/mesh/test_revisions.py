"""Revisions, history, diff, rollback, and the change notices that follow a commit."""
import threading

import pytest

from service.mesh import revisions as history
from service.mesh.models import Change, Mesh, Revision
from service.notices import get_bus
from tests.service.api_base import seed
from tests.service.mesh.test_api_resources import http_rules


@pytest.fixture
def mesh(api):
    seed(api)
    return Mesh.objects.get(name="m1")


def revisions(api, mesh="m1"):
    return api.get(f"/api/v1/meshes/{mesh}/revisions").json()["results"]


def create_route(api, weights=(90, 10)):
    body = {"name": "web", "meshes": ["m1"], "hostnames": ["web.example"], "rules": http_rules(weights)}
    response = api.post("/api/v1/http-routes", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


def test_every_write_gives_the_mesh_a_new_revision_with_its_history(api, mesh):
    latest = revisions(api)[0]["number"]
    create_route(api)
    newest = revisions(api)[0]
    assert newest["number"] == latest + 1
    assert newest["action"] == "create"
    assert newest["resource"] == "http-routes/web"
    assert "(api key 'owner-read-write')" in newest["actor"]
    assert newest["manifest"]["http-routes/web"] == api.get("/api/v1/http-routes/web").json()["etag"]
    assert Mesh.objects.get(pk=mesh.pk).revision == newest["number"]


def test_a_shared_resource_revises_every_mesh_that_uses_it_and_only_those(api, mesh):
    api.post("/api/v1/meshes", {"name": "m2"}, format="json")
    m2_before = revisions(api, "m2")[0]["number"]
    m1_before = revisions(api)[0]["number"]
    assert api.patch("/api/v1/endpoint-groups/eg1", {"capacity_scaler": 0.5}, format="json").status_code == 200
    assert revisions(api)[0]["number"] == m1_before + 1
    assert revisions(api, "m2")[0]["number"] == m2_before


def test_an_unreferenced_resource_is_in_the_history_but_revises_no_mesh(api, mesh):
    before = revisions(api)[0]["number"]
    api.post("/api/v1/health-checks", {"name": "lonely", "tcp_health_check": {"port": 22}}, format="json")
    assert revisions(api)[0]["number"] == before
    change = Change.objects.filter(tenant=mesh.tenant).first()
    assert (change.action, change.kind, change.name) == ("create", "health-checks", "lonely")
    assert api.get("/api/v1/changes").json()["results"][0]["name"] == "lonely"


def test_diff_shows_a_json_patch_of_what_changed(api, mesh):
    create_route(api)
    api.patch("/api/v1/http-routes/web", {"rules": http_rules((50, 50))}, format="json")
    number = revisions(api)[0]["number"]
    diff = api.get(f"/api/v1/meshes/m1/revisions/{number}/diff").json()
    assert diff["from"] == number - 1 and diff["to"] == number
    assert diff["added"] == [] and diff["removed"] == []
    [changed] = diff["changed"]
    assert changed["resource"] == "http-routes/web"
    assert {"op": "replace", "path": "/rules/0/action/destinations/0/weight", "value": 50} in changed["patch"]
    against = api.get(f"/api/v1/meshes/m1/revisions/{number}/diff?against={number - 2}").json()
    assert [item["resource"] for item in against["added"]] == ["http-routes/web"]


def test_rollback_restores_the_configuration_as_a_new_revision(api, mesh):
    create_route(api)
    good = revisions(api)[0]
    api.patch("/api/v1/http-routes/web", {"rules": http_rules((0, 100))}, format="json")
    api.post("/api/v1/backend-services", {"name": "late", "mesh": "m1"}, format="json")
    api.post("/api/v1/http-routes", {"name": "extra", "meshes": ["m1"], "hostnames": ["extra.example"], "rules": [
        {"action": {"destinations": [{"service_name": "late"}]}}]}, format="json")
    api.post("/api/v1/endpoint-groups/eg1/attach", {"endpoints": [{"address": "10.0.0.9", "port": 8080}]},
             format="json")

    response = api.post(f"/api/v1/meshes/m1/revisions/{good['number']}/rollback")
    assert response.status_code == 201, response.json()
    restored = response.json()
    assert restored["action"] == "rollback"
    assert restored["number"] > good["number"]
    weights = [d["weight"] for d in api.get("/api/v1/http-routes/web").json()["rules"][0]["action"]["destinations"]]
    assert weights == [90, 10]
    assert api.get("/api/v1/http-routes/extra").status_code == 404
    assert api.get("/api/v1/backend-services/late").status_code == 404
    endpoints = api.get("/api/v1/endpoint-groups/eg1").json()["endpoints"]
    assert {"10.0.0.1", "10.0.0.9"} == {e["address"] for e in endpoints}  # membership is the workloads'
    expected = {key: digest for key, digest in good["manifest"].items() if key != "endpoint-groups/eg1"}
    assert {key: digest for key, digest in restored["manifest"].items() if key != "endpoint-groups/eg1"} == expected


def test_rollback_restores_a_route_against_the_service_it_restored_before(api, mesh):
    """What a rollback restores first (a service's protocol) is what it
    validates the resources after against (a gRPC route to that service)."""
    route = {"name": "g", "meshes": ["m1"], "hostnames": ["g.example"],
             "rules": [{"action": {"destinations": [{"service_name": "bs-grpc"}]}}]}
    assert api.post("/api/v1/grpc-routes", route, format="json").status_code == 201
    good = revisions(api)[0]
    assert api.delete("/api/v1/grpc-routes/g").status_code == 204
    assert api.patch("/api/v1/backend-services/bs-grpc", {"protocol": "HTTP"}, format="json").status_code == 200

    response = api.post(f"/api/v1/meshes/m1/revisions/{good['number']}/rollback")
    assert response.status_code == 201, response.json()
    assert api.get("/api/v1/backend-services/bs-grpc").json()["protocol"] == "GRPC"
    assert api.get("/api/v1/grpc-routes/g").status_code == 200


def test_rollback_that_cannot_apply_changes_nothing(api, mesh):
    policy = {"target": "eg1", "max_replicas": 5, "load_balancing_utilization": {"target": 0.8}}
    api.post("/api/v1/autoscaling-policies", {"name": "p1", **policy}, format="json")
    good = revisions(api)[0]["number"]
    api.delete("/api/v1/autoscaling-policies/p1")
    # Autoscaling policies are shared, so rollback does not delete p2; p1 cannot
    # come back while p2 scales the same group.
    api.post("/api/v1/autoscaling-policies", {"name": "p2", **policy}, format="json")
    api.patch("/api/v1/backend-services/bs-http", {"timeout_sec": 5}, format="json")
    before = revisions(api)[0]["number"]
    response = api.post(f"/api/v1/meshes/m1/revisions/{good}/rollback")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "rollback_conflict"
    assert "autoscaling-policies/p1" in body["message"] and "target" in body["message"]
    assert revisions(api)[0]["number"] == before
    assert api.get("/api/v1/backend-services/bs-http").json()["timeout_sec"] == 5
    assert api.get("/api/v1/autoscaling-policies/p1").status_code == 404


def test_unknown_revision_is_a_404(api, mesh, other_api):
    assert api.get("/api/v1/meshes/m1/revisions/999").status_code == 404
    assert api.post("/api/v1/meshes/m1/revisions/999/rollback").status_code == 404
    assert other_api.get("/api/v1/meshes/m1/revisions").status_code == 404


@pytest.fixture
def received():
    notices, arrived = [], threading.Event()

    def handler(notice):
        notices.append(notice)
        arrived.set()

    with get_bus().subscribe(handler):
        yield notices, arrived


def test_a_committed_change_publishes_a_notice(api, mesh, received, django_capture_on_commit_callbacks):
    notices, arrived = received
    with django_capture_on_commit_callbacks(execute=True):
        create_route(api)
    assert arrived.wait(5)
    notice = notices[-1]
    assert (notice.tenant, notice.mesh) == ("acme", "m1")
    assert notice.revision == Mesh.objects.get(pk=mesh.pk).revision
    assert notice.kinds == ("http-routes",)
    assert notice.resources == (("http-routes", "web"),)


def test_a_refused_change_publishes_nothing(api, mesh, received, django_capture_on_commit_callbacks):
    notices, arrived = received
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = api.post("/api/v1/http-routes", {"name": "bad", "meshes": ["m1"], "hostnames": ["x.example"],
                                                    "rules": [{"action": {"destinations": [{"service_name": "nope"}]}}]},
                            format="json")
    assert response.status_code == 400
    assert callbacks == []
    assert not arrived.wait(0.5)


def test_every_revisions_manifest_is_the_mesh_as_it_was(api, mesh, monkeypatch):
    """Revisions store deltas and a whole manifest only at checkpoints (every
    3rd here); each, rebuilt, must be what the policy was right after it."""
    monkeypatch.setattr(history, "CHECKPOINT_EVERY", 3)
    api.post("/api/v1/meshes", {"name": "m2"}, format="json")
    api.post("/api/v1/backend-services", {"name": "bs-m2", "mesh": "m2", "protocol": "GRPC"}, format="json")
    seen = {}

    def after(response):
        assert response.status_code < 300, response.json()
        for name in ("m1", "m2"):
            current = Mesh.objects.get(name=name)
            seen[(name, current.revision)] = history.manifest(current)

    after(api.post("/api/v1/http-routes", {"name": "web", "meshes": ["m1"], "hostnames": ["web.example"],
                                           "rules": http_rules()}, format="json"))
    after(api.patch("/api/v1/http-routes/web", {"rules": http_rules((50, 50))}, format="json"))
    after(api.post("/api/v1/health-checks", {"name": "hc2", "tcp_health_check": {"port": 22}}, format="json"))
    after(api.patch("/api/v1/backend-services/bs-http", {"health_checks": ["hc2"]}, format="json"))
    after(api.patch("/api/v1/health-checks/hc2", {"check_interval_sec": 9}, format="json"))
    after(api.patch("/api/v1/backend-services/bs-http", {"health_checks": []}, format="json"))
    after(api.post("/api/v1/endpoint-groups/eg1/attach", {"endpoints": [{"address": "10.0.0.7", "port": 80}]},
                   format="json"))
    after(api.post("/api/v1/autoscaling-policies", {"name": "p1", "target": "eg1", "max_replicas": 3,
                                                    "load_balancing_utilization": {"target": 0.5}}, format="json"))
    after(api.post("/api/v1/grpc-routes", {"name": "rpc", "meshes": ["m2"], "hostnames": ["rpc.example"], "rules": [
        {"action": {"destinations": [{"service_name": "bs-m2"}]}}]}, format="json"))
    after(api.delete("/api/v1/autoscaling-policies/p1"))
    after(api.patch("/api/v1/meshes/m1", {"description": "changed"}, format="json"))
    after(api.delete("/api/v1/http-routes/web"))
    first_route = min(number for (name, number) in seen if name == "m1")
    after(api.post(f"/api/v1/meshes/m1/revisions/{first_route}/rollback"))
    for name in ("m1", "m2"):
        revisions_of = {item["number"]: item["manifest"] for item in api.get(
            f"/api/v1/meshes/{name}/revisions?limit=1000").json()["results"]}
        for (mesh_name, number), expected in seen.items():
            if mesh_name == name:
                assert revisions_of[number] == expected, (name, number)
                single = api.get(f"/api/v1/meshes/{name}/revisions/{number}").json()["manifest"]
                assert single == expected
    stored = Revision.objects.filter(mesh__name="m1")
    assert 0 < stored.filter(checkpoint__isnull=False).count() < stored.count()


def test_a_revision_stores_what_changed_not_the_whole_mesh(api, mesh):
    for i in range(5):
        body = {"name": f"r{i}", "meshes": ["m1"], "hostnames": [f"r{i}.example"], "rules": http_rules()}
        assert api.post("/api/v1/http-routes", body, format="json").status_code == 201
    api.patch("/api/v1/http-routes/r3", {"rules": http_rules((1, 99))}, format="json")
    latest = Revision.objects.filter(mesh=mesh).first()
    assert latest.checkpoint is None
    assert latest.changes == {"http-routes/r3": api.get("/api/v1/http-routes/r3").json()["etag"]}
    manifest = api.get(f"/api/v1/meshes/m1/revisions/{latest.number}").json()["manifest"]
    assert [key for key in manifest if key.startswith("http-routes/")] == [f"http-routes/r{i}" for i in range(5)]
