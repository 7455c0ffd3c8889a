"""data "interlock_mesh": a mesh of the tenant, by name."""
from tf.iface import ReadDataContext

from terraform.provider import schema as s
from terraform.provider.data_sources import ApiDataSource
from terraform.provider.client import ApiError
from terraform.provider.resources.mesh import Mesh


class MeshData(ApiDataSource):
    name = "mesh"
    description = ("Reads a mesh of the tenant by name, e.g. one another team manages, or to see the revision "
                   "the configuration's changes made.")
    fields = (
        s.string("name", "The mesh's name.", required=True),
        *(s.read_only(f) for f in Mesh.fields if f.name != "name"),
        s.number("revision", "The mesh's current revision number; it grows with every change to any policy "
                             "resource of the mesh.", read_only=True),
    )

    def read(self, ctx: ReadDataContext, config: dict):
        try:
            body = self.client.get(Mesh.collection, config["name"])
        except ApiError as error:
            ctx.diagnostics.add_error(f"Cannot read mesh {config['name']!r}", str(error), path=["name"])
            return None
        return s.state_from(self.fields, body)
