"""interlock_health_check: how Interlock's workers probe endpoints, from which regions."""
from terraform.provider import schema as s
from terraform.provider.resource import ApiResource

PORT = ("The port probed on every endpoint (1 to 65535). Left out, each endpoint is probed on its own port "
        "(the one traffic goes to).")


VERIFY_TLS = s.boolean("verify_tls", "Verify the endpoint's TLS certificate; left out or false, any certificate is "
                                    "accepted, as Envoy's and GCP's health checks do.")


def http_probe(scheme: str):
    return (
        s.number("port", PORT),
        s.string("request_path", f"The path of the {scheme} request.", default="/"),
        s.string("host", "The Host header to send (default: the endpoint's address)."),
        s.string("response", "A substring the response body must contain for the endpoint to count as healthy."),
    )


class HealthCheck(ApiResource):
    name = "health_check"
    collection = "health-checks"
    description = ("A health check: Interlock's workers probe every endpoint of the backend services that use it, "
                   "from each source region, and proxies send traffic only to endpoints that pass. Set exactly one "
                   "of the `*_health_check` objects.")
    fields = (
        *s.common("health check", "health checks"),
        s.number("check_interval_sec", "Seconds between two probes of an endpoint (1 to 300).", default=5),
        s.number("timeout_sec", "Seconds a probe may take (1 to 300, at most `check_interval_sec`).", default=5),
        s.number("healthy_threshold", "Consecutive passed probes that make an unhealthy endpoint healthy (1 to 10).",
                 default=2),
        s.number("unhealthy_threshold", "Consecutive failed probes that make a healthy endpoint unhealthy "
                                        "(1 to 10).", default=2),
        s.strings("source_regions", "Regions of Interlock's workers that probe (up to 8); an endpoint's verdict "
                                    "aggregates them. Empty: the deployment's default probing regions.",
                  default=[]),
        s.single("http_health_check", "Probe with an HTTP/1.1 GET; 200 is healthy.", http_probe("HTTP")),
        s.single("https_health_check", "Probe with an HTTPS GET; 200 is healthy.", (
            *http_probe("HTTPS"),
            VERIFY_TLS,
        )),
        s.single("http2_health_check", "Probe with an HTTP/2 GET (h2c, or h2 over TLS with `tls`); 200 is healthy.", (
            *http_probe("HTTP/2"),
            s.boolean("tls", "HTTP/2 over TLS (ALPN h2); left out or false, h2c in plain text."),
            VERIFY_TLS,
        )),
        s.single("tcp_health_check", "Probe by opening a TCP connection, optionally exchanging bytes.", (
            s.number("port", PORT),
            s.string("request", "Bytes to send once connected."),
            s.string("response", "Bytes the endpoint's reply must contain."),
        )),
        s.single("grpc_health_check", "Probe with the gRPC health checking protocol (grpc.health.v1).", (
            s.number("port", PORT),
            s.string("grpc_service_name", "The service name to ask about; empty asks about the server as a whole."),
        )),
        s.ETAG,
    )
