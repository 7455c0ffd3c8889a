from django.db import models

from service.mesh.models.base import PolicyResource


class Mesh(PolicyResource):
    kind = "meshes"

    interception_port = models.PositiveIntegerField(default=15001)
    # The number of the mesh's latest revision; bumped under this row's lock.
    revision = models.PositiveIntegerField(default=0)

    class Meta(PolicyResource.Meta):
        pass
