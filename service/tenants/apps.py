from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "service.tenants"
    label = "tenants"
