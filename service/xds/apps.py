from django.apps import AppConfig


class XdsConfig(AppConfig):
    name = "service.xds"
    label = "xds"
