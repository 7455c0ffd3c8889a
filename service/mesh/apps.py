from django.apps import AppConfig


class MeshConfig(AppConfig):
    name = "service.mesh"
    label = "mesh"
