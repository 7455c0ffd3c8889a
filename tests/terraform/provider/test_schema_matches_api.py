"""The provider's schema says what the API's serializers say: the same
arguments, the same required ones, defaults and choices, so a plan shows what
the API will store. A field added to the API without the provider fails here."""
import pytest
from rest_framework import fields as drf, relations, serializers

from service.mesh.api.serializers import BY_KIND
from service.tenants.api.serializers import NodeTokenSerializer
from terraform.provider import schema as s
from terraform.provider.provider import RESOURCES
from terraform.provider.resources.node_token import NodeToken
from tf import types as tftypes

SERIALIZERS = {**BY_KIND, NodeToken.collection: NodeTokenSerializer}
# Arguments the provider requires although the API's field is optional,
# because the API then refuses the whole object without them.
STRICTER = {"tcp-routes rules[*].matches", "tcp-routes rules[*].action.destinations",
            "grpc-routes rules[*].action.destinations"}


def kind_of_api(field) -> str:
    if isinstance(field, serializers.ListSerializer):
        return "many"
    if isinstance(field, serializers.Serializer):
        return "single"
    if isinstance(field, (drf.ListField, relations.ManyRelatedField)):
        return "list"
    if isinstance(field, drf.DictField):
        return "map"
    if isinstance(field, drf.BooleanField):
        return "bool"
    if isinstance(field, (drf.IntegerField, drf.FloatField)):
        return "number"
    return "string"


def kind_of_provider(field: s.Field) -> str:
    if field.nested:
        return "many" if field.many else "single"
    if field.from_api is s.compact_json:
        return "map"  # JSON text in Terraform, an object in the API
    return {tftypes.List: "list", tftypes.Set: "list", tftypes.Map: "map", tftypes.Bool: "bool",
            tftypes.Number: "number"}.get(type(field.type), "string")


def api_fields(serializer) -> dict:
    if isinstance(serializer, serializers.ListSerializer):
        serializer = serializer.child
    return {name: f for name, f in serializer.fields.items() if not f.read_only}


def api_default(field):
    return field.default() if callable(field.default) else field.default


def compare(provider_fields, serializer, where: str) -> list[str]:
    problems = []
    api = api_fields(serializer)
    mine = {f.name: f for f in provider_fields if not f.read_only}
    if set(api) != set(mine):
        problems.append(f"{where}: API has {sorted(set(api) - set(mine))}, provider has {sorted(set(mine) - set(api))}")
    for name in set(api) & set(mine):
        theirs, ours = api[name], mine[name]
        here = f"{where}{name}"
        if kind_of_api(theirs) != kind_of_provider(ours):
            problems.append(f"{here}: {kind_of_api(theirs)} in the API, {kind_of_provider(ours)} in the provider")
        if theirs.required and not ours.required:
            problems.append(f"{here}: required by the API, optional in the provider")
        if ours.required and not theirs.required and here not in STRICTER:
            problems.append(f"{here}: required by the provider, optional in the API")
        if isinstance(theirs, drf.ChoiceField) and tuple(theirs.choices) != ours.choices:
            problems.append(f"{here}: choices {tuple(theirs.choices)} in the API, {ours.choices} in the provider")
        problems += compare_default(ours, theirs, here)
        if ours.nested:
            problems += compare(ours.nested, theirs, f"{here}{'[*]' if ours.many else ''}.")
    return problems


def compare_default(ours: s.Field, theirs, here: str) -> list[str]:
    if ours.kept:
        return [] if not theirs.required else [f"{here}: kept by the provider, required by the API"]
    if ours.nested and not ours.many and ours.default == {}:
        # An object whose fields all have defaults: the API always shows it.
        missing = [n for n, f in api_fields(theirs).items() if f.default is drf.empty]
        return [f"{here}: the provider defaults it, but the API has no default for {missing}"] if missing else []
    if theirs.default is drf.empty:
        nullable = theirs.allow_null or "." in here.split(" ", 1)[1]  # nested: left out of the body
        problems = [] if not ours.has_default else [f"{here}: the provider has a default, the API none"]
        return problems + ([] if nullable or ours.required else [f"{here}: optional but not nullable in the API"])
    expected = s.parse_json(ours.default) if ours.from_api is s.compact_json else ours.default
    if not ours.has_default or expected != api_default(theirs):
        return [f"{here}: default {api_default(theirs)!r} in the API, {ours.default!r} in the provider"]
    return []


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.name)
def test_arguments_match_the_api(resource):
    assert compare(resource.fields, SERIALIZERS[resource.collection](), f"{resource.collection} ") == []


def test_every_api_collection_has_a_resource():
    assert set(SERIALIZERS) == {resource.collection for resource in RESOURCES}
