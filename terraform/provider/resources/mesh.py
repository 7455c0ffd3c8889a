"""interlock_mesh: a tenant's mesh, the unit proxies join and revisions number."""
from terraform.provider import schema as s
from terraform.provider.resource import ApiResource


class Mesh(ApiResource):
    name = "mesh"
    collection = "meshes"
    description = ("A mesh: the set of routes and backend services a group of proxies (Envoy sidecars or "
                   "proxyless gRPC clients) receives. Every change to the mesh's policy makes a new revision "
                   "(the `interlock_mesh` data source reads the current one).")
    fields = (
        *s.common("mesh", "meshes"),
        s.number("interception_port", "The port on which Envoy sidecars of the mesh receive the outbound traffic "
                                      "they route (the HTTP listener; TCP routes listen on their own ports).",
                 default=15001),
        s.ETAG,
    )
