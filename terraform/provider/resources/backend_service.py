"""interlock_backend_service: endpoint groups behind one name, and how traffic reaches them."""
from terraform.provider import schema as s
from terraform.provider.resource import ApiResource

PROTOCOLS = ("HTTP", "HTTP2", "GRPC", "TCP")
LOCALITY_LB_POLICIES = ("ROUND_ROBIN", "LEAST_REQUEST", "RING_HASH", "RANDOM", "MAGLEV")
SESSION_AFFINITIES = ("NONE", "CLIENT_IP", "HTTP_COOKIE", "HEADER_FIELD", "GENERATED_COOKIE")


class BackendService(ApiResource):
    name = "backend_service"
    collection = "backend-services"
    description = ("A backend service: what routes send traffic to. It spreads requests over the endpoints of its "
                   "backends (endpoint groups, in any region or cloud), checks them with its health check, and "
                   "fails over between localities.")
    fields = (
        *s.common("backend service", "backend services"),
        s.string("mesh", "The mesh the service belongs to.", required=True, replace=True),
        s.string("protocol", "The protocol proxies speak to the endpoints.", default="HTTP", choices=PROTOCOLS),
        s.strings("health_checks", "The health check of the endpoints, by name (at most one).", default=[]),
        s.many("backends", "The endpoint groups that serve the service, each once.", (
            s.string("endpoint_group", "The endpoint group, by name.", required=True),
            s.string("balancing_mode", "What the group's capacity counts.", default="RATE",
                     choices=("RATE", "UTILIZATION", "CONNECTION")),
            s.number("capacity_scaler", "A factor (0 to 1) on the group's capacity for this service; 0 drains it.",
                     default=1.0),
            s.string("preference", "`PREFERRED` backends take traffic before `DEFAULT` ones.", default="DEFAULT",
                     choices=("DEFAULT", "PREFERRED")),
            s.number("max_rate_per_endpoint", "Requests per second per endpoint, overriding the group's."),
        ), default=[]),
        s.string("locality_lb_policy", "How a proxy picks an endpoint within a locality.", default="ROUND_ROBIN",
                 choices=LOCALITY_LB_POLICIES),
        s.number("timeout_sec", "Seconds a request may take, unless a route sets its own timeout.", default=30),
        s.string("session_affinity", "What keeps a client on one endpoint; anything but `NONE` needs "
                                     "`locality_lb_policy` `RING_HASH` or `MAGLEV`.", default="NONE",
                 choices=SESSION_AFFINITIES),
        s.single("circuit_breakers", "Limits per proxy on what it sends to the service.", (
            s.number("max_connections", "Connections to all endpoints."),
            s.number("max_pending_requests", "Requests waiting for a connection."),
            s.number("max_requests", "Requests in flight."),
            s.number("max_retries", "Retries in flight."),
            s.number("max_requests_per_connection", "Requests on one connection before it is closed."),
        )),
        s.single("outlier_detection", "Ejecting endpoints that fail requests, by what proxies see.", (
            s.number("consecutive_errors", "Consecutive 5xx answers that eject an endpoint."),
            s.number("consecutive_gateway_failure", "Consecutive 502, 503 or 504 answers that eject an endpoint."),
            s.number("interval_sec", "Seconds between two ejection sweeps."),
            s.number("base_ejection_time_sec", "Seconds an endpoint stays ejected, times the ejections it had."),
            s.number("max_ejection_percent", "The most endpoints (percent) that may be ejected at once."),
            s.number("enforcing_consecutive_errors", "The chance (percent) that `consecutive_errors` ejects."),
            s.number("enforcing_consecutive_gateway_failure",
                     "The chance (percent) that `consecutive_gateway_failure` ejects."),
            s.number("enforcing_success_rate", "The chance (percent) that a low success rate ejects."),
            s.number("success_rate_minimum_hosts", "Endpoints needed before success rates are compared."),
            s.number("success_rate_request_volume", "Requests an endpoint needs in an interval to be compared."),
            s.number("success_rate_stdev_factor", "Ejects below the mean minus this factor / 1000 standard "
                                                  "deviations."),
        )),
        s.single("consistent_hash", "What `RING_HASH` and `MAGLEV` hash; at most one of `http_header_name`, "
                                    "`http_cookie` and `use_source_ip`.", (
            s.string("http_header_name", "Hash this request header."),
            s.single("http_cookie", "Hash this cookie (generated when missing).", (
                s.string("name", "The cookie's name.", required=True),
                s.string("path", "The cookie's path."),
                s.number("ttl_sec", "The generated cookie's lifetime in seconds."),
            )),
            s.boolean("use_source_ip", "Hash the client's IP address."),
            s.number("minimum_ring_size", "The fewest entries of the hash ring."),
        )),
        s.single("failover", "How traffic moves between localities when endpoints fail.", (
            s.string("mode", "`REGION_THEN_CLOUD`: the proxy's own region first, then the other regions of its "
                             "cloud, then other clouds. `DISABLED`: all localities alike.",
                     default="REGION_THEN_CLOUD", choices=("REGION_THEN_CLOUD", "DISABLED")),
            s.number("failover_ratio", "The share (0 to 1) of healthy endpoints below which a locality starts "
                                       "sending traffic on."),
            s.boolean("drop_traffic_if_unhealthy", "Refuse requests when no endpoint anywhere is healthy, rather "
                                                   "than try unhealthy ones.", default=False),
        )),
        s.ETAG,
    )
