"""service.mesh.api.serializers.base: what every policy serializer shares."""
from rest_framework.serializers import ModelSerializer

from service.mesh.api.serializers import BY_KIND, MeshSerializer
from service.mesh.models import Mesh


def test_no_serializer_drops_a_validator_drf_would_derive_from_the_model():
    """PolicySerializer.get_validators skips deriving them because DRF would
    derive none; this fails the day a model gains a constraint DRF would check."""
    for kind, serializer_class in BY_KIND.items():
        assert ModelSerializer.get_validators(serializer_class()) == [], kind
        assert serializer_class().get_validators() == []


def test_represent_except_leaves_out_only_the_named_fields_and_only_once():
    serializer = MeshSerializer()
    mesh = Mesh(name="m1", description="edge", labels={"team": "a"})
    partial = serializer.represent_except(mesh, {"labels": {}, "description": ""})
    full = serializer.to_representation(mesh)
    assert full["labels"] == {"team": "a"} and full["description"] == "edge"
    assert partial == {key: value for key, value in full.items() if key not in ("labels", "description")}
