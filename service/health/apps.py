from django.apps import AppConfig


class HealthConfig(AppConfig):
    name = "service.health"
    label = "health"
