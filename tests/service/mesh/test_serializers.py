"""service.mesh.api.serializers.base: what every policy serializer shares."""
from rest_framework.serializers import ModelSerializer

from service.mesh.api.serializers import BY_KIND


def test_no_serializer_drops_a_validator_drf_would_derive_from_the_model():
    """PolicySerializer.get_validators skips deriving them because DRF would
    derive none; this fails the day a model gains a constraint DRF would check."""
    for kind, serializer_class in BY_KIND.items():
        assert ModelSerializer.get_validators(serializer_class()) == [], kind
        assert serializer_class().get_validators() == []
