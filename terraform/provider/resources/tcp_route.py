"""interlock_tcp_route: which TCP connections go to which backend services."""
from terraform.provider import schema as s
from terraform.provider.resource import ApiResource
from terraform.provider.resources import route_parts as parts


class TcpRoute(ApiResource):
    name = "tcp_route"
    collection = "tcp-routes"
    description = ("A TCP route: Envoy sidecars of its meshes listen on the ports its rules match and forward each "
                   "connection to the rule's destinations. No other TCP route of the meshes may claim a port, nor "
                   "may the meshes' interception port be one.")
    fields = (
        *s.common("TCP route", "TCP routes"),
        parts.meshes(),
        parts.rules("The rules, tried in order (1 to 100).", (
            s.many("matches", "The connections the rule applies to (at least one).", (
                s.string("address", "The destination addresses, as a CIDR range.", default="0.0.0.0/0"),
                s.number("port", "The destination port.", required=True),
            ), required=True),
            s.single("action", "Where matching connections go.", (
                parts.destinations(required=True),
            ), required=True),
        )),
        s.ETAG,
    )
