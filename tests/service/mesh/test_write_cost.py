"""The query budget of a route write, so the per-write cost does not creep
back (docs/performance.md): a create or an update makes a fixed number of
queries, whatever the size of the mesh."""
import pytest

from service.tenants import key_cache
from tests.service.api_base import seed

# Counted on Postgres inside the test's transaction, so each includes the
# SAVEPOINT and RELEASE of the request's atomic block (BEGIN and COMMIT in
# production). SQLite runs more: it cannot write in another statement's WITH.
CREATE_BUDGET = 7
UPDATE_BUDGET = 6


def route(i, weight=90):
    return {"name": f"r{i}", "meshes": ["m1"], "hostnames": [f"r{i}.example"],
            "rules": [{"matches": [{"prefix_match": "/"}], "action": {"destinations": [
                {"service_name": "bs-http", "weight": weight}, {"service_name": "bs-http2", "weight": 100 - weight}]}}]}


@pytest.mark.parametrize("routes_before", [0, 40])
def test_a_route_write_keeps_to_its_query_budget(api, django_assert_max_num_queries, routes_before):
    seed(api)
    for i in range(routes_before):
        assert api.post("/api/v1/http-routes", route(1000 + i), format="json").status_code == 201
    # Read now, the keys revoked lately are not read again by the two writes
    # (at most one read per DROPPED_CHECK_SEC per process, key_cache.py).
    key_cache.dropped.read()
    with django_assert_max_num_queries(CREATE_BUDGET):
        assert api.post("/api/v1/http-routes", route(1), format="json").status_code == 201
    with django_assert_max_num_queries(UPDATE_BUDGET):
        response = api.patch("/api/v1/http-routes/r1", {"rules": route(1, weight=50)["rules"]}, format="json")
        assert response.status_code == 200
