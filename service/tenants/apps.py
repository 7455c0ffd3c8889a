from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "service.tenants"
    label = "tenants"

    def ready(self):
        from service.tenants import schema  # noqa: F401  registers the OpenAPI auth scheme
