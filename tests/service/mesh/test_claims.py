"""Hostnames and TCP ports a route claims in its meshes, kept as rows with a
unique constraint: what a write claims, frees and may not take."""
from django.apps import apps

from service.mesh.models import HostnameClaim, Mesh, PortClaim, Route
from tests.service.api_base import seed

ROUTES = "/api/v1/http-routes"


def route(name, hostnames, meshes=("m1",), service="bs-http"):
    return {"name": name, "meshes": list(meshes), "hostnames": hostnames,
            "rules": [{"action": {"destinations": [{"service_name": service}]}}]}


def tcp_route(name, port):
    return {"name": name, "meshes": ["m1"], "rules": [{"matches": [{"port": port}],
                                                       "action": {"destinations": [{"service_name": "bs-tcp"}]}}]}


def claims():
    return sorted(HostnameClaim.objects.values_list("mesh__name", "route__name", "hostname"))


def field_error(response):
    assert response.status_code == 400, response.json()
    [error] = response.json()["errors"]
    return error["field"], error["code"], error["message"]


def test_a_route_claims_its_hostnames_and_an_update_moves_its_claims(api):
    seed(api)
    assert api.post(ROUTES, route("a", ["a.example", "b.example"]), format="json").status_code == 201
    assert claims() == [("m1", "a", "a.example"), ("m1", "a", "b.example")]
    # Keeping a hostname is no clash with itself; a dropped one is free for another route.
    assert api.patch(f"{ROUTES}/a", {"hostnames": ["b.example", "c.example"]}, format="json").status_code == 200
    assert claims() == [("m1", "a", "b.example"), ("m1", "a", "c.example")]
    assert api.post(ROUTES, route("b", ["a.example"]), format="json").status_code == 201
    assert field_error(api.post(ROUTES, route("c", ["new.example", "c.example"]), format="json")) == (
        "hostnames[1]", "hostname_in_use", "http-routes/a already serves 'c.example' in a mesh this route is attached to.")


def test_an_update_that_keeps_hostnames_and_meshes_keeps_its_claims_and_one_that_moves_meshes_moves_them(api):
    seed(api)
    api.post("/api/v1/meshes", {"name": "m2"}, format="json")
    api.post("/api/v1/backend-services", {"name": "bs-m2", "mesh": "m2"}, format="json")
    assert api.post(ROUTES, route("a", ["a.example"]), format="json").status_code == 201
    weights = {"rules": [{"action": {"destinations": [{"service_name": "bs-http", "weight": 5}]}}]}
    assert api.patch(f"{ROUTES}/a", weights, format="json").status_code == 200
    assert claims() == [("m1", "a", "a.example")]
    assert field_error(api.post(ROUTES, route("b", ["a.example"]), format="json"))[:2] == (
        "hostnames[0]", "hostname_in_use")
    moved = {"meshes": ["m2"], "rules": [{"action": {"destinations": [{"service_name": "bs-m2"}]}}]}
    assert api.patch(f"{ROUTES}/a", moved, format="json").status_code == 200
    assert claims() == [("m2", "a", "a.example")]
    assert api.post(ROUTES, route("b", ["a.example"]), format="json").status_code == 201


def test_a_hostname_is_claimed_per_mesh(api):
    seed(api)
    api.post("/api/v1/meshes", {"name": "m2"}, format="json")
    api.post("/api/v1/backend-services", {"name": "bs-m2", "mesh": "m2"}, format="json")
    assert api.post(ROUTES, route("a", ["same.example"]), format="json").status_code == 201
    assert api.post(ROUTES, route("b", ["same.example"], meshes=["m2"], service="bs-m2"), format="json").status_code == 201
    grpc = {**route("g", ["same.example"], service="bs-grpc")}
    assert field_error(api.post("/api/v1/grpc-routes", grpc, format="json"))[:2] == ("hostnames[0]", "hostname_in_use")


def test_deleting_a_route_frees_its_claims(api):
    seed(api)
    api.post(ROUTES, route("a", ["a.example"]), format="json")
    api.post("/api/v1/tcp-routes", tcp_route("t", 5432), format="json")
    assert api.delete(f"{ROUTES}/a").status_code == 204
    assert api.delete("/api/v1/tcp-routes/t").status_code == 204
    assert not HostnameClaim.objects.exists() and not PortClaim.objects.exists()
    assert api.post(ROUTES, route("b", ["a.example"]), format="json").status_code == 201
    assert api.post("/api/v1/tcp-routes", tcp_route("u", 5432), format="json").status_code == 201


def test_a_tcp_route_cannot_move_onto_a_port_in_use(api):
    seed(api)
    api.post("/api/v1/tcp-routes", tcp_route("pg", 5432), format="json")
    api.post("/api/v1/tcp-routes", tcp_route("redis", 6379), format="json")
    before = api.get("/api/v1/tcp-routes/redis").json()
    moved = api.patch("/api/v1/tcp-routes/redis", {"rules": tcp_route("redis", 5432)["rules"]}, format="json")
    assert field_error(moved) == ("rules", "port_in_use",
                                  "tcp-routes/pg already listens on port 5432 in a mesh this route is attached to.")
    assert api.get("/api/v1/tcp-routes/redis").json() == before
    assert sorted(PortClaim.objects.values_list("route__name", "port")) == [("pg", 5432), ("redis", 6379)]
    # Nor onto the interception port, which the mesh can no longer take while a route listens there.
    interception = api.patch("/api/v1/tcp-routes/redis", {"rules": tcp_route("redis", 15001)["rules"]}, format="json")
    assert field_error(interception) == ("rules", "port_in_use", "Port 15001 is mesh 'm1''s interception port.")
    refused = api.patch("/api/v1/meshes/m1", {"interception_port": 6379}, format="json")
    assert field_error(refused) == ("interception_port", "port_in_use", "tcp-routes/redis listens on port 6379.")


def test_rollback_gives_back_the_claims_of_what_it_restores(api):
    seed(api)
    api.post(ROUTES, route("a", ["a.example"]), format="json")
    good = api.get("/api/v1/meshes/m1/revisions").json()["results"][0]["number"]
    api.patch(f"{ROUTES}/a", {"hostnames": ["z.example"]}, format="json")
    api.post(ROUTES, route("b", ["b.example"]), format="json")
    assert api.post(f"/api/v1/meshes/m1/revisions/{good}/rollback").status_code == 201
    assert claims() == [("m1", "a", "a.example")]


def test_the_migration_claims_what_existing_routes_serve(api):
    from importlib import import_module

    seed(api)
    api.post(ROUTES, route("a", ["a.example", "b.example"]), format="json")
    api.post("/api/v1/tcp-routes", tcp_route("t", 5432), format="json")
    expected = claims(), sorted(PortClaim.objects.values_list("mesh_id", "route_id", "port"))
    HostnameClaim.objects.all().delete()
    PortClaim.objects.all().delete()
    import_module("service.mesh.migrations.0003_claims_and_revision_deltas").claim_existing_routes(apps, None)
    assert (claims(), sorted(PortClaim.objects.values_list("mesh_id", "route_id", "port"))) == expected
    assert Route.objects.count() == 2 and Mesh.objects.count() == 1
