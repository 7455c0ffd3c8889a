"""Bad input to the policy API: each class of it is refused with the right 4xx,
a stable code and the path of the offending field, and changes nothing (no
object, no ETag, no mesh revision, no history entry)."""
import copy
import json
from contextlib import contextmanager

import pytest

from service.dev import demo_policy
from service.mesh.models import (
    AutoscalingPolicy, Backend, BackendService, Change, Endpoint, EndpointGroup, HealthCheck, Mesh, ResourceVersion,
    Revision, Route,
)
from service.tenants.models import Role, Scope

V1 = "/api/v1"
POLICY_MODELS = (Mesh, HealthCheck, EndpointGroup, BackendService, Route, AutoscalingPolicy)

# Everything the bad requests below refer to, on top of the demo policy
# (mesh demo, health check http-ok, groups shop-v1-east/shop-v2-west,
# services shop-v1/shop-v2, http route shop on shop.demo).
EXTRA_POLICY = [
    ("meshes", {"name": "other"}),
    ("backend-services", {"name": "other-svc", "mesh": "other"}),
    ("backend-services", {"name": "db", "mesh": "demo", "protocol": "TCP"}),
    ("backend-services", {"name": "rpc", "mesh": "demo", "protocol": "GRPC"}),
    ("tcp-routes", {"name": "pg", "meshes": ["demo"], "rules": [
        {"matches": [{"port": 5432}], "action": {"destinations": [{"service_name": "db"}]}}]}),
    ("endpoint-groups", {"name": "scalable", "scaler": {"webhook": {"url": "https://hooks.example.com/a"}}}),
    ("endpoint-groups", {"name": "scalable-2", "scaler": {"webhook": {"url": "https://hooks.example.com/b"}}}),
    ("autoscaling-policies", {"name": "scale-a", "target": "scalable", "max_replicas": 5,
                              "load_balancing_utilization": {"target": 0.8}}),
]

# A valid create body per collection; each bad case below breaks one thing in one of them.
VALID = {
    "meshes": {"name": "new-mesh", "interception_port": 15001},
    "health-checks": {"name": "new-hc", "check_interval_sec": 5, "timeout_sec": 5, "healthy_threshold": 2,
                      "http_health_check": {"port": 8080}},
    "endpoint-groups": {"name": "new-eg", "capacity_scaler": 1.0,
                        "endpoints": [{"address": "10.0.0.1", "port": 80, "weight": 1}]},
    "backend-services": {"name": "new-bs", "mesh": "demo", "health_checks": ["http-ok"],
                         "backends": [{"endpoint_group": "shop-v1-east", "capacity_scaler": 1.0}]},
    "http-routes": {"name": "new-route", "meshes": ["demo"], "hostnames": ["new.demo"], "rules": [{
        "matches": [{"regex_match": "^/api/.*$", "header_matches": [{"header": "x-user", "regex_match": "^a.*"}]}],
        "action": {"destinations": [{"service_name": "shop-v1", "weight": 1}],
                   "fault_injection_policy": {"abort": {"http_status": 503, "percentage": 10}},
                   "request_mirror_policy": {"destination": {"service_name": "shop-v2"}}},
    }]},
    "grpc-routes": {"name": "new-grpc", "meshes": ["demo"], "hostnames": ["rpc.demo"], "rules": [{
        "matches": [{"method": {"grpc_service": "shop.Cart", "grpc_method": "Get.*", "type": "REGULAR_EXPRESSION"}}],
        "action": {"destinations": [{"service_name": "rpc"}]},
    }]},
    "tcp-routes": {"name": "new-tcp", "meshes": ["demo"], "rules": [
        {"matches": [{"port": 6379}], "action": {"destinations": [{"service_name": "db"}]}}]},
    "autoscaling-policies": {"name": "new-asp", "target": "scalable-2", "min_replicas": 1, "max_replicas": 5,
                             "load_balancing_utilization": {"target": 0.8}},
}

LOOKBEHIND = "(?<=a)b"
TOO_COMPLEX = "|".join(f"{chr(97 + i % 26) * 3}{i}" for i in range(100))


def mutate(collection, path, value):
    """VALID[collection] with the value at `path` (keys and list indexes) replaced."""
    body = copy.deepcopy(VALID[collection])
    target = body
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return body


def state():
    """What any accepted write would change."""
    return {
        "objects": {model.__name__: sorted(model.objects.values_list("tenant_id", "name", "version"))
                    for model in POLICY_MODELS},
        "endpoints": sorted(Endpoint.objects.values_list("group__name", "address", "port", "weight")),
        "backends": Backend.objects.count(),
        "revisions": sorted(Mesh.objects.values_list("name", "revision")),
        "revision_rows": Revision.objects.count(),
        "changes": Change.objects.count(),
        "resource_versions": ResourceVersion.objects.count(),
    }


@contextmanager
def nothing_changes():
    before = state()
    yield
    assert state() == before


def assert_error(response, status, code, field=None, field_code=None):
    """The one error shape: a stable top-level code and, for a field, its path and code."""
    assert response.status_code == status, response.content
    body = response.json()
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["errors"], list)
    if field is not None:
        found = [(error["field"], error["code"]) for error in body["errors"]]
        assert (field, field_code) in found, body
    return body


@pytest.fixture
def acme(api):
    """The owner client of tenant acme, its policy in place; a 500 comes back as a response."""
    api.raise_request_exception = False
    for collection, body in [*demo_policy(), *EXTRA_POLICY]:
        response = api.post(f"{V1}/{collection}", body, format="json")
        assert response.status_code == 201, (collection, response.content)
    return api


@pytest.mark.django_db
@pytest.mark.parametrize("collection", sorted(VALID))
def test_the_valid_bodies_the_bad_cases_start_from_are_accepted(acme, collection):
    # Guards every negative case: each fails only because of what it breaks.
    response = acme.post(f"{V1}/{collection}", VALID[collection], format="json")
    assert response.status_code == 201, response.content


# (collection, path in VALID[collection], bad value, field path in errors[], field code)
INVALID = {
    # wrong types
    "port-as-string": ("meshes", ["interception_port"], "abc", "interception_port", "invalid"),
    "port-as-float": ("meshes", ["interception_port"], 1.5, "interception_port", "invalid"),
    "endpoint-port-as-string": ("endpoint-groups", ["endpoints", 0, "port"], "eighty", "endpoints[0].port", "invalid"),
    "list-for-block": ("health-checks", ["http_health_check"], [8080], "http_health_check", "invalid"),
    "list-for-labels": ("meshes", ["labels"], ["a"], "labels", "not_a_dict"),
    "dict-for-rules": ("http-routes", ["rules"], {"matches": []}, "rules", "not_a_list"),
    "number-for-reference": ("backend-services", ["mesh"], 5, "mesh", "invalid"),
    "string-for-duration": ("health-checks", ["timeout_sec"], "soon", "timeout_sec", "invalid"),
    # out-of-range numbers
    "endpoint-port-70000": ("endpoint-groups", ["endpoints", 0, "port"], 70000, "endpoints[0].port", "invalid_port"),
    "interception-port-70000": ("meshes", ["interception_port"], 70000, "interception_port", "invalid_port"),
    "health-check-port-0": ("health-checks", ["http_health_check", "port"], 0, "http_health_check.port",
                            "invalid_port"),
    "endpoint-weight-negative": ("endpoint-groups", ["endpoints", 0, "weight"], -1, "endpoints[0].weight",
                                 "min_value"),
    "destination-weight-negative": ("http-routes", ["rules", 0, "action", "destinations", 0, "weight"], -1,
                                    "rules[0].action.destinations[0].weight", "min_value"),
    "group-capacity-scaler-2": ("endpoint-groups", ["capacity_scaler"], 2, "capacity_scaler", "max_value"),
    "backend-capacity-scaler-2": ("backend-services", ["backends", 0, "capacity_scaler"], 2,
                                  "backends[0].capacity_scaler", "max_value"),
    "fault-percentage-101": ("http-routes", ["rules", 0, "action", "fault_injection_policy", "abort", "percentage"],
                             101, "rules[0].action.fault_injection_policy.abort.percentage", "invalid_percentage"),
    "healthy-threshold-11": ("health-checks", ["healthy_threshold"], 11, "healthy_threshold", "max_value"),
    "sub-millisecond-timeout": ("health-checks", ["timeout_sec"], 1.0001, "timeout_sec", "invalid_duration"),
    # regular expressions Envoy's RE2 would refuse
    "route-regex-lookbehind": ("http-routes", ["rules", 0, "matches", 0, "regex_match"], LOOKBEHIND,
                               "rules[0].matches[0].regex_match", "invalid_regex"),
    "header-regex-lookbehind": ("http-routes", ["rules", 0, "matches", 0, "header_matches", 0, "regex_match"],
                                LOOKBEHIND, "rules[0].matches[0].header_matches[0].regex_match", "invalid_regex"),
    "grpc-method-regex-lookbehind": ("grpc-routes", ["rules", 0, "matches", 0, "method", "grpc_method"], LOOKBEHIND,
                                     "rules[0].matches[0].method.grpc_method", "invalid_regex"),
    "route-regex-too-complex": ("http-routes", ["rules", 0, "matches", 0, "regex_match"], TOO_COMPLEX,
                                "rules[0].matches[0].regex_match", "regex_too_complex"),
    # references to what does not exist
    "missing-mesh": ("backend-services", ["mesh"], "nope", "mesh", "does_not_exist"),
    "missing-endpoint-group": ("backend-services", ["backends", 0, "endpoint_group"], "nope",
                               "backends[0].endpoint_group", "does_not_exist"),
    "missing-health-check": ("backend-services", ["health_checks"], ["nope"], "health_checks", "does_not_exist"),
    "missing-destination": ("http-routes", ["rules", 0, "action", "destinations", 0, "service_name"], "nope",
                            "rules[0].action.destinations[0].service_name", "does_not_exist"),
    "missing-mirror-destination": ("http-routes", ["rules", 0, "action", "request_mirror_policy", "destination",
                                                   "service_name"], "nope",
                                   "rules[0].action.request_mirror_policy.destination.service_name",
                                   "does_not_exist"),
    "missing-route-mesh": ("http-routes", ["meshes"], ["nope"], "meshes", "does_not_exist"),
    "route-mesh-not-a-string": ("http-routes", ["meshes"], [1], "meshes[0]", "invalid"),
    "missing-autoscaling-target": ("autoscaling-policies", ["target"], "nope", "target", "does_not_exist"),
    # references that exist but may not be used there
    "destination-in-another-mesh": ("http-routes", ["rules", 0, "action", "destinations", 0, "service_name"],
                                    "other-svc", "rules[0].action.destinations[0].service_name", "wrong_mesh"),
    "destination-wrong-protocol": ("http-routes", ["rules", 0, "action", "destinations", 0, "service_name"], "db",
                                   "rules[0].action.destinations[0].service_name", "protocol_mismatch"),
    "target-without-scaler": ("autoscaling-policies", ["target"], "shop-v1-east", "target", "no_scaler"),
    "target-already-scaled": ("autoscaling-policies", ["target"], "scalable", "target", "target_in_use"),
    # names and claims already taken
    "duplicate-mesh-name": ("meshes", ["name"], "demo", "name", "duplicate"),
    "duplicate-route-name": ("http-routes", ["name"], "shop", "name", "duplicate"),
    "hostname-of-another-route": ("http-routes", ["hostnames"], ["fresh.demo", "shop.demo"], "hostnames[1]",
                                  "hostname_in_use"),
    "hostname-of-an-http-route-on-a-grpc-route": ("grpc-routes", ["hostnames"], ["shop.demo"], "hostnames[0]",
                                                  "hostname_in_use"),
    "hostname-twice": ("http-routes", ["hostnames"], ["x.demo", "x.demo"], "hostnames", "duplicate"),
    "endpoint-twice": ("endpoint-groups", ["endpoints"], [{"address": "10.0.0.1", "port": 80}] * 2, "endpoints",
                       "duplicate"),
    "tcp-port-of-another-route": ("tcp-routes", ["rules", 0, "matches", 0, "port"], 5432, "rules", "port_in_use"),
    "tcp-port-is-interception-port": ("tcp-routes", ["rules", 0, "matches", 0, "port"], 15001, "rules",
                                      "port_in_use"),
    # values that contradict each other
    "timeout-above-interval": ("health-checks", ["timeout_sec"], 10, "timeout_sec", "timeout_too_long"),
    "min-above-max-replicas": ("autoscaling-policies", ["min_replicas"], 6, "min_replicas", "min_above_max"),
    "bad-name": ("meshes", ["name"], "Not_A_Name", "name", "invalid_name"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("case", INVALID.values(), ids=INVALID.keys())
def test_invalid_create_is_a_field_level_400_and_changes_nothing(acme, case):
    collection, path, value, field, field_code = case
    with nothing_changes():
        response = acme.post(f"{V1}/{collection}", mutate(collection, path, value), format="json")
        assert_error(response, 400, "invalid", field, field_code)
    assert acme.get(f"{V1}/{collection}/{VALID[collection]['name']}").status_code == 404


@pytest.mark.django_db
def test_a_body_that_is_not_an_object_is_a_400_on_the_whole_body(acme):
    with nothing_changes():
        assert_error(acme.post(f"{V1}/meshes", [1, 2], format="json"), 400, "invalid", "", "invalid")


@pytest.mark.django_db
@pytest.mark.parametrize("body", ["{bad", '{"name": "m",}', '{"name": NaN}', "\xff", "{"])
def test_malformed_json_is_a_400_malformed_json(acme, body):
    with nothing_changes():
        response = acme.generic("POST", f"{V1}/meshes", body.encode("latin-1"), content_type="application/json")
        assert_error(response, 400, "malformed_json")


@pytest.mark.django_db
def test_a_body_that_is_not_json_is_a_415(acme):
    with nothing_changes():
        response = acme.generic("POST", f"{V1}/meshes", "name=m", content_type="application/x-www-form-urlencoded")
        assert_error(response, 415, "unsupported_media_type")


@pytest.mark.django_db
def test_deeply_nested_json_is_a_400_not_a_500(acme):
    # Regression: json.load raises RecursionError (not ValueError), which DRF's
    # JSONParser let through as a 500.
    with nothing_changes():
        response = acme.generic("POST", f"{V1}/meshes", "[" * 100_000, content_type="application/json")
        assert_error(response, 400, "malformed_json")


@pytest.mark.django_db
def test_an_oversized_body_is_a_413_before_it_is_parsed(acme, settings):
    settings.MAX_REQUEST_BODY_BYTES = 200
    body = {**VALID["meshes"], "description": "x" * 300}
    with nothing_changes():
        assert_error(acme.post(f"{V1}/meshes", body, format="json"), 413, "payload_too_large")
    # The same limit lets a small body through.
    assert acme.post(f"{V1}/meshes", VALID["meshes"], format="json").status_code == 201


@pytest.fixture
def globex(other_api):
    """Tenant globex, with objects whose names acme might try."""
    for collection, body in [
        ("meshes", {"name": "g-demo"}),
        ("health-checks", {"name": "g-http-ok", "tcp_health_check": {"port": 80}}),
        ("endpoint-groups", {"name": "g-shop-v1-east"}),
        ("backend-services", {"name": "g-shop-v1", "mesh": "g-demo",
                              "backends": [{"endpoint_group": "g-shop-v1-east"}]}),
    ]:
        assert other_api.post(f"{V1}/{collection}", body, format="json").status_code == 201
    return other_api


@pytest.mark.django_db
@pytest.mark.parametrize("collection, path, value, field", [
    ("backend-services", ["mesh"], "g-demo", "mesh"),
    ("backend-services", ["backends", 0, "endpoint_group"], "g-shop-v1-east", "backends[0].endpoint_group"),
    ("backend-services", ["health_checks"], ["g-http-ok"], "health_checks"),
    ("http-routes", ["meshes"], ["g-demo"], "meshes"),
    ("http-routes", ["rules", 0, "action", "destinations", 0, "service_name"], "g-shop-v1",
     "rules[0].action.destinations[0].service_name"),
])
def test_another_tenants_object_named_in_a_body_does_not_exist(acme, globex, collection, path, value, field):
    with nothing_changes():
        response = acme.post(f"{V1}/{collection}", mutate(collection, path, value), format="json")
        assert_error(response, 400, "invalid", field, "does_not_exist")


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["meshes/g-demo", "backend-services/g-shop-v1", "health-checks/g-http-ok"])
def test_another_tenants_object_in_the_url_is_a_404(acme, globex, path):
    with nothing_changes():
        for method in ("get", "delete", "patch"):
            assert_error(getattr(acme, method)(f"{V1}/{path}", {"description": "x"}, format="json"), 404, "not_found")
    assert globex.get(f"{V1}/{path}").json()["description"] == ""


@pytest.mark.django_db
@pytest.mark.parametrize("path, referrers", [
    ("meshes/demo", ["backend-services/db", "backend-services/rpc", "backend-services/shop-v1",
                     "backend-services/shop-v2", "http-routes/shop", "tcp-routes/pg"]),
    ("health-checks/http-ok", ["backend-services/shop-v1", "backend-services/shop-v2"]),
    ("endpoint-groups/shop-v1-east", ["backend-services/shop-v1"]),
    ("endpoint-groups/scalable", ["autoscaling-policies/scale-a"]),
    ("backend-services/shop-v1", ["http-routes/shop"]),
    ("backend-services/db", ["tcp-routes/pg"]),
])
def test_deleting_a_referenced_resource_is_a_409_naming_its_referrers(acme, path, referrers):
    before = acme.get(f"{V1}/{path}").json()
    with nothing_changes():
        body = assert_error(acme.delete(f"{V1}/{path}"), 409, "in_use")
    assert body["referrers"] == referrers
    assert acme.get(f"{V1}/{path}").json() == before


@pytest.mark.django_db
@pytest.mark.parametrize("method, body", [
    ("put", {"name": "other", "description": "changed"}),
    ("patch", {"description": "changed"}),
    ("delete", None),
])
def test_a_stale_if_match_is_a_412_and_a_current_one_succeeds(acme, method, body):
    path = f"{V1}/meshes/other"
    # `other` has a backend service; free it so that the delete case can succeed.
    assert acme.delete(f"{V1}/backend-services/other-svc").status_code == 204
    current = acme.get(path)
    etag = current["ETag"]
    assert etag == f'"{current.json()["etag"]}"'
    send = getattr(acme, method)
    with nothing_changes():
        for stale in ('"0000"', 'W/"0000"', '"0000", "1111"'):
            assert_error(send(path, body, format="json", HTTP_IF_MATCH=stale), 412, "precondition_failed")
    assert acme.get(path).json() == current.json()
    response = send(path, body, format="json", HTTP_IF_MATCH=etag)
    assert response.status_code == (204 if method == "delete" else 200), response.content
    if method != "delete":
        assert response.json()["description"] == "changed"
        # The old ETag is now stale too.
        assert_error(send(path, body, format="json", HTTP_IF_MATCH=etag), 412, "precondition_failed")


# (path, body of an invalid update, method, field, field code)
INVALID_UPDATES = {
    "rename-by-put": ("meshes/demo", {"name": "renamed"}, "put", "name", "immutable"),
    "rename-by-patch": ("http-routes/shop", {"name": "renamed"}, "patch", "name", "immutable"),
    "move-backend-service": ("backend-services/shop-v1", {"mesh": "other"}, "patch", "mesh", "immutable"),
    "timeout-above-stored-interval": ("health-checks/http-ok", {"timeout_sec": 10}, "patch", "timeout_sec",
                                      "timeout_too_long"),
    "min-above-stored-max": ("autoscaling-policies/scale-a", {"min_replicas": 6}, "patch", "min_replicas",
                             "min_above_max"),
    "interception-port-of-a-tcp-route": ("meshes/demo", {"interception_port": 5432}, "patch", "interception_port",
                                         "port_in_use"),
    "route-regex-lookbehind": ("http-routes/shop", {"rules": [{"matches": [{"regex_match": LOOKBEHIND}], "action": {
        "destinations": [{"service_name": "shop-v1"}]}}]}, "patch", "rules[0].matches[0].regex_match",
                               "invalid_regex"),
    "put-missing-required-field": ("backend-services/shop-v1", {"name": "shop-v1"}, "put", "mesh", "required"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("case", INVALID_UPDATES.values(), ids=INVALID_UPDATES.keys())
def test_invalid_update_is_a_field_level_400_and_changes_nothing(acme, case):
    path, body, method, field, field_code = case
    before = acme.get(f"{V1}/{path}").json()
    with nothing_changes():
        response = getattr(acme, method)(f"{V1}/{path}", body, format="json")
        assert_error(response, 400, "invalid", field, field_code)
    assert acme.get(f"{V1}/{path}").json() == before


@pytest.mark.django_db
@pytest.mark.parametrize("header, code", [
    (None, "not_authenticated"),
    ("Bearer ilk_not-a-real-key", "authentication_failed"),
    ("Bearer", "authentication_failed"),
    ("Basic dXNlcjpwYXNz", "authentication_failed"),
])
def test_without_a_valid_key_reads_and_writes_are_401(acme, header, code):
    acme.credentials(**({"HTTP_AUTHORIZATION": header} if header else {}))
    with nothing_changes():
        assert_error(acme.get(f"{V1}/meshes"), 401, code)
        assert_error(acme.post(f"{V1}/meshes", VALID["meshes"], format="json"), 401, code)
        assert_error(acme.delete(f"{V1}/meshes/other"), 401, code)


@pytest.mark.django_db
@pytest.mark.parametrize("role, scope", [(Role.OWNER, Scope.READ), (Role.VIEWER, Scope.READ_WRITE)])
def test_a_key_that_may_not_write_gets_403(acme, tenant, client_for, role, scope):
    reader = client_for(tenant, role=role, scope=scope)
    assert reader.get(f"{V1}/meshes/demo").status_code == 200
    with nothing_changes():
        assert_error(reader.post(f"{V1}/meshes", VALID["meshes"], format="json"), 403, "permission_denied")
        assert_error(reader.patch(f"{V1}/meshes/demo", {"description": "x"}, format="json"), 403,
                     "permission_denied")
        assert_error(reader.delete(f"{V1}/http-routes/shop"), 403, "permission_denied")


# --- inputs that used to crash the API with a 500 (regressions) ---

@pytest.mark.django_db
@pytest.mark.parametrize("metadata, field", [
    ('{"k": "\\u0000"}', "endpoints[0].metadata.k"),
    ('{"\\u0000": "v"}', "endpoints[0].metadata"),
    ('{"k": "\\ud800"}', "endpoints[0].metadata.k"),
], ids=["nul", "nul-key", "lone-surrogate"])
def test_text_postgres_cannot_store_is_a_400(acme, metadata, field):
    # Endpoint metadata is free-form JSON; jsonb refuses \u0000 and a lone
    # surrogate cannot be encoded, so these used to fail in the database.
    body = json.dumps(mutate("endpoint-groups", ["endpoints", 0, "metadata"], "@@")).replace('"@@"', metadata)
    with nothing_changes():
        response = acme.generic("POST", f"{V1}/endpoint-groups", body, content_type="application/json")
        assert_error(response, 400, "invalid", field, "invalid_text")


@pytest.mark.django_db
def test_a_reference_by_a_name_with_a_nul_is_a_400(acme):
    # A name with a NUL used to reach Postgres in the reference lookup: DataError.
    with nothing_changes():
        response = acme.post(f"{V1}/backend-services", mutate("backend-services", ["mesh"], "de\u0000mo"),
                             format="json")
        assert_error(response, 400, "invalid", "mesh", "invalid_text")


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["meshes/de%00mo", "http-routes/%00", "members/%00"])
def test_a_url_name_with_a_nul_is_a_404(acme, path):
    # The lookup value used to go to Postgres as is; a NUL byte was a DataError.
    with nothing_changes():
        assert_error(acme.get(f"{V1}/{path}"), 404, "not_found")
        assert_error(acme.delete(f"{V1}/{path}"), 404, "not_found")


@pytest.mark.django_db
def test_a_header_range_outside_int64_is_a_400(acme):
    # Envoy's Int64Range cannot carry these; accepted, every proxy would NACK the route.
    path = ["rules", 0, "matches", 0, "header_matches", 0]
    body = mutate("http-routes", path, {"header": "x-n", "range_match": {"start": -(2**63) - 1, "end": 2**63}})
    with nothing_changes():
        response = acme.post(f"{V1}/http-routes", body, format="json")
        assert_error(response, 400, "invalid", "rules[0].matches[0].header_matches[0].range_match.start", "min_value")


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["limit=10000000000000000000000", "offset=10000000000000000000000",
                                   "limit=-1&offset=-5", "limit=abc"])
def test_paging_parameters_out_of_range_are_not_a_500(acme, query):
    # Without a max_limit, a limit past bigint reached Postgres: "bigint out of range".
    response = acme.get(f"{V1}/meshes?{query}")
    assert response.status_code == 200, response.content
    assert len(response.json()["results"]) <= 100
