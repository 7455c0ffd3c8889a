"""Property-based run of every operation of our own OpenAPI schema (the one
drf-spectacular serves at /api/v1/schema/) against the WSGI app, as a real
tenant: whatever the generated request, valid or not, the API never answers
with a 5xx, and what it answers with a documented status matches the schema."""
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from service.dev import demo_policy
from service.wsgi import application

# Examples and fuzzing only: their case count is bounded by max_examples below;
# the coverage phase's is not (hundreds of requests per operation).
CONFIG = SchemathesisConfig.from_str("[phases.coverage]\nenabled = false\n")
schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", application, config=CONFIG)

# Names of what the demo policy creates, by collection, so that operations on
# one object (`/meshes/{name}/`...) also reach objects that exist, not only 404s.
SEEDED = {}
for _collection, _body in demo_policy():
    SEEDED.setdefault(_collection, []).append(_body["name"])


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """Half the time, point the generated path at an object that exists."""
    collection = context.operation.path.split("/")[3]
    known = {"name": SEEDED.get(collection), "mesh_name": SEEDED["meshes"], "number": ["1", "2"]}
    if not path_parameters:
        return st.just(path_parameters)
    existing = st.fixed_dictionaries({
        key: st.sampled_from(known[key]) if known.get(key) else st.just(value)
        for key, value in path_parameters.items()
    })
    return st.one_of(st.just(path_parameters), existing)


@pytest.fixture
def acme(api):
    """An owner client of tenant acme, with the demo policy in place; a 500 comes back as a response."""
    api.raise_request_exception = False
    for collection, body in demo_policy():
        assert api.post(f"/api/v1/{collection}", body, format="json").status_code == 201
    return api


@pytest.fixture
def calls():
    """The requests one operation's run made: there must have been some."""
    made = []
    yield made
    assert made, "no generated case was run"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@schema.parametrize()
@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
def test_no_request_makes_the_api_fail(case, acme, calls):
    response = case.call(headers={"Authorization": f"Bearer {acme.key}"})
    calls.append((case.method, case.path, response.status_code))
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])


# 500s the run above found, pinned down as plain tests.

@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", ["meshes/demo", "http-routes/shop", "endpoint-groups/shop-v1-east"])
def test_options_on_an_object_describes_it(acme, path):
    # DRF's metadata clones the request as PUT and calls get_object(), whose
    # queryset used select_for_update outside a transaction (autocommit, as in
    # production): TransactionManagementError.
    response = acme.options(f"/api/v1/{path}")
    assert response.status_code == 200, response.content
    assert "PUT" in response.json()["actions"]


@pytest.mark.django_db
def test_rolling_back_to_the_current_configuration_is_not_a_500(acme):
    # rollback() made no new revision when nothing differed, then next() over
    # the empty list raised StopIteration.
    latest = acme.get("/api/v1/meshes/demo").json()["revision"]
    before = acme.get(f"/api/v1/meshes/demo/revisions/{latest}").json()["manifest"]
    response = acme.post(f"/api/v1/meshes/demo/revisions/{latest}/rollback")
    assert response.status_code in (200, 201, 409), response.content
    now = acme.get("/api/v1/meshes/demo").json()["revision"]
    assert acme.get(f"/api/v1/meshes/demo/revisions/{now}").json()["manifest"] == before
