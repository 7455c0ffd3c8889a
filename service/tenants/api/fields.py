from rest_framework import serializers

from service import sql


class TenantSlugRelatedField(serializers.SlugRelatedField):
    """A reference by name to another object of the request's tenant. Objects of
    other tenants are indistinguishable from objects that do not exist."""

    default_error_messages = {
        "does_not_exist": "There is no {model} named '{value}'.",
        "invalid": "Give the name as a string.",
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("slug_field", "name")
        super().__init__(**kwargs)

    def get_queryset(self):
        tenant = self.context.get("tenant")
        return super().get_queryset().for_tenant(tenant)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        found = self.find(data)
        if found is None:
            model = self.queryset.model
            self.fail("does_not_exist", model=getattr(model, "kind", model._meta.verbose_name), value=data)
        return found

    def find(self, name):
        tenant = self.context.get("tenant")
        # Every policy write resolves references, so an unfiltered lookup is
        # a prebuilt statement (service.sql) rather than an ORM query.
        if tenant is not None and self.slug_field == "name" and not self.queryset.query.has_filters():
            rows = sql.select(self.queryset.model, "tenant_id = %s AND name = %s", [tenant.pk, name])
            return rows[0] if rows else None
        return self.get_queryset().filter(**{self.slug_field: name}).first()


class ReferenceNames(serializers.ListField):
    """References by name to other objects of the request's tenant, which the
    serializer resolves itself (with other look-ups, in one statement); read,
    the names of the related objects."""

    def __init__(self, **kwargs):
        super().__init__(child=Name(), **kwargs)

    def get_attribute(self, instance):
        return [related.name for related in super().get_attribute(instance).all()]


class Name(serializers.CharField):
    """A name, given as a string (DRF's CharField would take a number)."""

    default_error_messages = {"invalid": TenantSlugRelatedField.default_error_messages["invalid"]}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)
