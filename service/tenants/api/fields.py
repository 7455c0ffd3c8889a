from rest_framework import serializers


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
        return super().get_queryset().filter(tenant=tenant)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        try:
            return self.get_queryset().get(**{self.slug_field: data})
        except self.get_queryset().model.DoesNotExist:
            model = getattr(self.get_queryset().model, "kind", self.get_queryset().model._meta.verbose_name)
            self.fail("does_not_exist", model=model, value=data)
