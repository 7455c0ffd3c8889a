"""interlock_grpc_route: which gRPC calls go to which backend services."""
from terraform.provider import schema as s
from terraform.provider.resource import ApiResource
from terraform.provider.resources import route_parts as parts

MATCH_TYPES = ("EXACT", "REGULAR_EXPRESSION")

MATCH = (
    s.single("method", "The gRPC method called.", (
        s.string("grpc_service", "The service, e.g. `helloworld.Greeter` (default: any)."),
        s.string("grpc_method", "The method, e.g. `SayHello`.", required=True),
        s.string("type", "How the names are compared.", default="EXACT", choices=MATCH_TYPES),
        s.boolean("case_sensitive", "Compare names with case.", default=True),
    )),
    s.many("headers", "Conditions on request metadata, all of which must hold.", (
        s.string("key", "The metadata key.", required=True),
        s.string("value", "The value, or a RE2 regular expression (see `type`).", required=True),
        s.string("type", "How the value is compared.", default="EXACT", choices=MATCH_TYPES),
    )),
)


class GrpcRoute(ApiResource):
    name = "grpc_route"
    collection = "grpc-routes"
    description = ("A gRPC route: calls to its hostnames in its meshes (from Envoy sidecars, or from proxyless "
                   "gRPC clients dialling `xds:///<hostname>`) are matched against its rules in order; the first "
                   "rule that matches decides where the call goes.")
    fields = (
        *s.common("gRPC route", "gRPC routes"),
        parts.meshes(),
        parts.hostnames("the authority clients dial"),
        parts.rules("The rules, tried in order (1 to 100).", (
            s.many("matches", "The rule applies when any of these matches (none: every call).", MATCH),
            s.single("action", "What happens to matching calls.", (
                parts.destinations(required=True),
                parts.timeout(),
                parts.retry_policy(parts.GRPC_RETRY_CONDITIONS),
                parts.fault_injection_policy(),
            ), required=True),
        )),
        s.ETAG,
    )
