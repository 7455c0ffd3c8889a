"""data "interlock_proxy_bootstrap": the bootstrap file an Envoy sidecar or a
proxyless gRPC client starts from, made by the same code as `interlock-bootstrap`."""
import json

from tf.iface import ReadDataContext

from client.bootstrap import BootstrapError, BootstrapOptions, envoy_bootstrap, grpc_bootstrap, node_id
from terraform.provider import schema as s
from terraform.provider.data_sources import ApiDataSource
from terraform.provider.client import ApiError

KINDS = {"envoy": envoy_bootstrap, "grpc": grpc_bootstrap}


class ProxyBootstrap(ApiDataSource):
    name = "proxy_bootstrap"
    description = ("The bootstrap of one proxy: JSON an Envoy sidecar starts from (`envoy -c`), or the file a "
                   "proxyless gRPC client names in `GRPC_XDS_BOOTSTRAP`. The mesh is checked through the API and "
                   "the tenant is the API key's.")
    fields = (
        s.string("kind", "Which bootstrap.", required=True, choices=tuple(KINDS)),
        s.string("server", "`host:port` of Interlock's xDS server, e.g. `xds.example.com:443`.", required=True),
        s.string("mesh", "The mesh the proxy joins.", required=True),
        s.string("node", "The proxy's name in the mesh (an RFC 1035 label); its node id is "
                         "`tenants/<tenant>/meshes/<mesh>/nodes/<node>`.", required=True),
        s.string("token", "A node token of the mesh (`interlock_node_token.<name>.token`).", required=True,
                 sensitive=True),
        s.string("cloud", "The proxy's cloud, for locality-aware routing.", default=""),
        s.string("region", "The proxy's region: its own region's endpoints come first.", default=""),
        s.string("zone", "The proxy's zone.", default=""),
        s.string("tls_ca", "Path of a PEM CA bundle to verify the xDS server with; left out, the connection is "
                           "plaintext (loopback or a trusted network only)."),
        s.string("server_name", "The name the server's certificate is checked against, when it differs from the "
                                "host in `server` (Envoy only)."),
        s.boolean("delta", "Use incremental (delta) xDS (Envoy only).", default=False),
        s.number("admin_port", "The Envoy admin port on loopback (0: any free port).", default=15000),
        s.string("tenant", "The tenant, as the API key says.", read_only=True),
        s.string("node_id", "The proxy's node id.", read_only=True),
        s.string("json", "The bootstrap, as JSON text (holds the token).", read_only=True, sensitive=True),
    )

    def validate(self, diags, type_name, config):
        super().validate(diags, type_name, config)
        s.check_config(self.fields, config, diags)

    def read(self, ctx: ReadDataContext, config: dict):
        state = s.plan(self.fields, config, None)
        if not state["token"]:
            ctx.diagnostics.add_error(
                "Missing token", "The token is null. An imported interlock_node_token has none (the API shows the "
                "secret only when the token is created): `terraform apply -replace=<address>` issues a new one.",
                path=["token"])
            return None
        client = self.client
        try:
            client.get("meshes", state["mesh"])
            state["tenant"] = client.tenant()["name"]
        except ApiError as error:
            path = ["mesh"] if error.status == 404 else None
            ctx.diagnostics.add_error(f"Cannot make a bootstrap for mesh {state['mesh']!r}", str(error), path=path)
            return None
        options = BootstrapOptions(**{name: state[name] for name in OPTIONS}, tenant=state["tenant"])
        try:
            bootstrap = KINDS[state["kind"]](options)
        except BootstrapError as error:
            known = any(f.name == error.field for f in self.fields)
            ctx.diagnostics.add_error(f"Invalid {error.field}", error.message, path=[error.field] if known else None)
            return None
        state["node_id"] = node_id(options)
        state["json"] = json.dumps(bootstrap, indent=2, sort_keys=True)
        return state


OPTIONS = ("server", "mesh", "node", "token", "cloud", "region", "zone", "tls_ca", "server_name", "delta", "admin_port")
