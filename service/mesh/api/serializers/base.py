"""What every policy serializer shares: names, labels, the ETag, and the small
building blocks the resource-specific serializers are made of."""
from django.db import IntegrityError
from django.db.models import prefetch_related_objects
from rest_framework import serializers

from service import sql
from service.field_trees import ReusedFieldTree
from service.mesh import validation

UINT32_MAX = 2**32 - 1
# Fields of a representation that describe the stored row, not the policy: they
# are left out of the content hash, so the hash changes only with the policy.
VOLATILE_FIELDS = ("etag", "created_at", "updated_at", "revision")


class Block(serializers.Serializer):
    """A nested object stored as JSON; keys left out stay out."""

    # Names of fields of which at most (or, if `one_of_required`, exactly) one may be set.
    one_of: tuple[str, ...] = ()
    one_of_required = False

    def validate(self, attrs):
        present = [name for name in self.one_of if attrs.get(name) not in (None, False)]
        if len(present) > 1:
            raise serializers.ValidationError(
                f"Set only one of {', '.join(self.one_of)}; this sets {', '.join(present)}.", code="conflicting_fields"
            )
        if self.one_of_required and not present:
            raise serializers.ValidationError(f"Set one of {', '.join(self.one_of)}.", code="required")
        return attrs

    def to_internal_value(self, data):
        return dict(super().to_internal_value(data))


def duration(**kwargs):
    minimum = kwargs.pop("minimum", 0.001)
    maximum = kwargs.pop("maximum", validation.DURATION_MAX_SEC)
    return serializers.FloatField(
        validators=[lambda value: validation.duration_sec(value, minimum=minimum, maximum=maximum)], **kwargs
    )


def percentage(**kwargs):
    return serializers.FloatField(validators=[validation.percentage], **kwargs)


def uint32(minimum=0, **kwargs):
    return serializers.IntegerField(min_value=minimum, max_value=UINT32_MAX, **kwargs)


def is_name_clash(error: IntegrityError) -> bool:
    """Whether the write broke a `..._unique_name` constraint (every policy
    model has one on (tenant[, type], name)). Postgres names the constraint;
    SQLite names the columns."""
    constraint = getattr(getattr(error.__cause__, "diag", None), "constraint_name", None)
    if constraint is not None:
        return constraint.endswith("_unique_name")
    return str(error).startswith("UNIQUE constraint failed") and str(error).endswith(".name")


class PolicySerializer(ReusedFieldTree, serializers.ModelSerializer):
    name = serializers.CharField(max_length=63, validators=[validation.resource_name])
    description = serializers.CharField(max_length=1024, required=False, allow_blank=True, default="")
    labels = serializers.DictField(
        child=serializers.CharField(allow_blank=True), required=False, default=dict, validators=[validation.labels]
    )
    etag = serializers.CharField(source="version", read_only=True)

    # Fields saved as rows of their own (references, endpoints), after the resource.
    link_fields: tuple[str, ...] = ()

    common_fields = ["name", "description", "labels"]
    metadata_fields = ["etag", "created_at", "updated_at"]

    @property
    def tenant(self):
        return self.context["tenant"]

    # Fields to_representation leaves out (represent_except).
    omitted: frozenset[str] = frozenset()

    @property
    def _readable_fields(self):
        return (field for field in super()._readable_fields if field.field_name not in self.omitted)

    def represent_except(self, instance, names) -> dict:
        """The representation of `instance` without the fields `names`: what
        a PATCH that replaces them merges into, without the work of
        representing what it replaces."""
        self.omitted = frozenset(names)
        try:
            return self.to_representation(instance)
        finally:
            self.omitted = frozenset()

    def get_validators(self):
        """None: DRF derives validators from the model's unique constraints
        only where the serializer has all their fields, and every policy
        model's include the tenant, which none has (the unique index finds a
        taken name: create()). Deriving that, on every request, cost a route
        write 1 % of its CPU."""
        return []

    def validate_name(self, name):
        if self.instance is not None and name != self.instance.name:
            raise serializers.ValidationError(
                "A resource's name cannot change; create one with the new name instead.", code="immutable"
            )
        return name

    def create(self, validated):
        links = {name: validated.pop(name) for name in self.link_fields}
        instance = self.Meta.model(**validated)
        # The unique index finds a taken name in the INSERT itself, race-free
        # and without a query of its own; the failed INSERT ends the
        # transaction, which the error rolls back anyway.
        try:
            self.insert(instance, links)
        except IntegrityError as error:
            if not is_name_clash(error):
                raise
            raise serializers.ValidationError(
                {"name": [f"There is already one named '{instance.name}'."]}, code="duplicate"
            ) from None
        return instance

    def insert(self, instance, links):
        """Write a new instance and its `links`."""
        sql.insert([instance])
        self.save_links(instance, **links)

    # An update leaves its row to the write's bookkeeping, which writes it
    # with its new version in one statement (service.mesh.services.marking,
    # whole_row).
    row_unwritten = False

    def update(self, instance, validated):
        links = {name: validated.pop(name) for name in self.link_fields}
        for field, value in validated.items():
            setattr(instance, field, value)
        self.save_links(instance, **links)
        self.row_unwritten = True
        return instance

    def save_links(self, instance, **links):
        """Replace the instance's link rows with `links`."""

    def replace_links(self, instance, relation: str, targets):
        """Make the many-to-many `relation` of an existing `instance` exactly
        `targets`, writing only what differs, and leave it prefetched for
        what reads it next in the request."""
        manager = getattr(instance, relation)
        prefetch_related_objects([instance], relation)  # a no-op where the viewset's queryset did it
        if set(manager.all()) != set(targets):
            manager.set(targets)  # which forgets the prefetched rows: read them back in the order reads give them
            prefetch_related_objects([instance], relation)

    def policy_body(self, representation: dict) -> dict:
        """What of `representation` the content hash versions: the policy,
        not the row's metadata."""
        return {key: value for key, value in representation.items() if key not in VOLATILE_FIELDS}

    def answer_with(self, representation: dict):
        """Make `representation` this serializer's `.data` (the response), so
        that a write builds its resource's representation once, for its
        content hash and its answer both."""
        self._data = representation
