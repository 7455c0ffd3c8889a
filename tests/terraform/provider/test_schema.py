"""The schema's pure functions: plans, request bodies, state from API answers, error paths."""
from tf.types import Unknown
from tf.utils import Diagnostics

from terraform.provider import schema as s
from terraform.provider.resources.endpoint_group import EndpointGroup
from terraform.provider.resources.http_route import HttpRoute

FIELDS = (
    s.string("name", "Name.", required=True, replace=True),
    s.number("port", "Port.", default=15001),
    s.string("note", "Note."),
    s.many("items", "Items.", (
        s.string("key", "Key.", required=True),
        s.number("weight", "Weight.", default=1),
        s.string("mode", "Mode.", default="A", choices=("A", "B")),
    ), kept=True),
    s.single("box", "Box.", (s.string("colour", "Colour.", default=""),), default={}),
    s.ETAG,
)
PRIOR = {"name": "x", "port": 15001, "note": None, "items": [{"key": "k", "weight": 1, "mode": "A"}],
         "box": {"colour": ""}, "etag": "e1"}


def config(**values):
    return {"name": "x", "port": None, "note": None, "items": None, "box": None, "etag": None, **values}


def test_a_create_plans_the_api_defaults_and_leaves_computed_values_unknown():
    planned = s.plan(FIELDS, config(items=[{"key": "k", "weight": None, "mode": None}]), None)
    assert planned == {"name": "x", "port": 15001, "note": None, "items": [{"key": "k", "weight": 1, "mode": "A"}],
                       "box": {"colour": ""}, "etag": Unknown}
    assert s.plan(FIELDS, config(), None)["items"] is Unknown  # kept, and the API will say


def test_an_unchanged_configuration_plans_the_prior_state():
    assert s.plan(FIELDS, config(), PRIOR) == PRIOR  # `items` left out: kept as they are


def test_a_change_makes_the_etag_unknown_and_a_new_name_replaces():
    planned = s.plan(FIELDS, config(name="y", port="8080"), PRIOR)
    assert planned["etag"] is Unknown
    assert s.replaced_paths(FIELDS, PRIOR, planned) == [["name"]]
    assert s.changed_fields(FIELDS, PRIOR, planned) == ["name", "port"]


def test_numbers_terraform_sends_as_decimal_text_are_numbers():
    # cty sends 0.7 as "0.7": float64 cannot hold it exactly.
    field = s.number("target", "Target.")
    assert field.same("0.7", 0.7) and field.same("10", 10.0)
    assert s.request_body((field,), {"target": "0.7"}) == {"target": 0.7}


def test_a_request_body_sends_top_level_nulls_and_leaves_nested_nulls_out():
    body = s.request_body(FIELDS, {**PRIOR, "items": [{"key": "k", "weight": 2, "mode": None}]})
    assert body == {"name": "x", "port": 15001, "note": None, "items": [{"key": "k", "weight": 2}],
                    "box": {"colour": ""}}
    assert "items" not in s.request_body(FIELDS, {**PRIOR, "items": Unknown})  # kept, on create


def test_state_keeps_the_configurations_spelling_of_what_the_api_normalizes():
    route = HttpRoute.fields
    modifier = {"set": {"X-Trace": "1"}, "add": None, "remove": None}
    planned = {"rules": [{"matches": None, "action": {"request_header_modifier": modifier}}]}
    answer = {"rules": [{"action": {"request_header_modifier": {"set": {"x-trace": "1"}}}}]}
    state = s.state_from(route, answer, planned)
    assert state["rules"][0]["action"]["request_header_modifier"]["set"] == {"X-Trace": "1"}
    assert s.state_from(route, answer, None)["rules"][0]["action"]["request_header_modifier"]["set"] == \
        {"x-trace": "1"}


def test_json_metadata_round_trips_as_jsonencode_writes_it():
    answer = {"endpoints": [{"address": "10.0.0.1", "port": 80, "weight": 1, "metadata": {"b": 1, "a": "é"}}]}
    state = s.state_from(EndpointGroup.fields, answer)
    assert state["endpoints"][0]["metadata"] == '{"a":"é","b":1}'
    spelled = {"endpoints": [{"metadata": '{ "b": 1, "a": "é" }'}]}
    assert s.state_from(EndpointGroup.fields, answer, spelled)["endpoints"][0]["metadata"] == '{ "b": 1, "a": "é" }'
    assert s.request_body(EndpointGroup.fields, {"endpoints": state["endpoints"]})["endpoints"][0]["metadata"] == \
        {"a": "é", "b": 1}


def test_left_out_api_fields_with_defaults_read_back_as_the_defaults():
    state = s.state_from(FIELDS, {"name": "x", "items": [{"key": "k"}]})
    assert state == {"name": "x", "port": 15001, "note": None, "items": [{"key": "k", "weight": 1, "mode": "A"}],
                     "box": {"colour": ""}, "etag": None}


def test_api_error_fields_become_attribute_paths():
    route = HttpRoute.fields
    assert s.attribute_path(route, "rules[0].matches[1].regex_match") == \
        ["rules", (0,), "matches", (1,), "regex_match"]
    assert s.attribute_path(route, "hostnames[2]") == ["hostnames", (2,)]
    assert s.attribute_path(route, "rules[0].nonsense.x") == ["rules", (0,)]
    assert s.attribute_path(route, "") == []
    assert s.dotted(["rules", (0,), "action"]) == "rules[0].action"


def test_choices_are_checked_where_they_are_nested():
    diags = Diagnostics()
    s.check_config(FIELDS, config(items=[{"key": "k", "mode": "A"}, {"key": "l", "mode": "C"}]), diags)
    s.check_config(FIELDS, config(items=[{"key": "k", "mode": Unknown}]), diags)
    [error] = diags.diagnostics
    assert error.summary == "Invalid items[1].mode"
    assert error.path == ["items", (1,), "mode"]


def test_metadata_that_is_not_json_is_refused_before_the_plan():
    diags = Diagnostics()
    config = {"endpoints": [{"address": "10.0.0.1", "port": 80, "metadata": "{oops"}]}
    s.check_config(EndpointGroup.fields, config, diags)
    [error] = diags.diagnostics
    assert error.summary == "Invalid endpoints[0].metadata" and "jsonencode()" in error.detail
