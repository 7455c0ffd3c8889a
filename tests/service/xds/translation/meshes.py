"""Meshes built through the real API, for the translation tests: one that uses
every feature of the resource model, and small helpers."""


def post(api, collection: str, body: dict) -> dict:
    response = api.post(f"/api/v1/{collection}", body, format="json")
    assert response.status_code == 201, (collection, response.json())
    return response.json()


def patch(api, collection: str, name: str, body: dict) -> dict:
    response = api.patch(f"/api/v1/{collection}/{name}", body, format="json")
    assert response.status_code == 200, (collection, name, response.json())
    return response.json()


def group(name: str, cloud: str, region: str, zone: str, *addresses: str, **extra) -> dict:
    return {"name": name, "locality": {"cloud": cloud, "region": region, "zone": zone},
            "endpoints": [{"address": address, "port": 8080} for address in addresses], **extra}


GROUPS = [
    group("use1a", "aws", "us-east-1", "us-east-1a", "10.0.0.1", "10.0.0.2"),
    group("use1b", "aws", "us-east-1", "us-east-1b", "10.0.1.1"),
    group("usw2", "aws", "us-west-2", "us-west-2a", "10.1.0.1"),
    group("euw1", "gcp", "europe-west1", "europe-west1-b", "10.2.0.1"),
    group("onprem", "dc", "fra", "", "10.3.0.1"),
    group("dns", "aws", "us-east-1", "us-east-1a", "api.partner.example.com"),
]

SERVICES = [
    {"name": "web", "mesh": "m1", "health_checks": ["hc"], "timeout_sec": 12.5,
     "backends": [{"endpoint_group": "use1a"}, {"endpoint_group": "use1b", "capacity_scaler": 0.5},
                  {"endpoint_group": "usw2"}, {"endpoint_group": "euw1"}],
     "circuit_breakers": {"max_connections": 100, "max_pending_requests": 10, "max_requests": 1000,
                          "max_retries": 3, "max_requests_per_connection": 50},
     "outlier_detection": {"consecutive_errors": 5, "consecutive_gateway_failure": 3, "interval_sec": 10,
                           "base_ejection_time_sec": 30, "max_ejection_percent": 50,
                           "enforcing_consecutive_errors": 100, "enforcing_consecutive_gateway_failure": 100,
                           "enforcing_success_rate": 90, "success_rate_minimum_hosts": 5,
                           "success_rate_request_volume": 100, "success_rate_stdev_factor": 1900},
     "failover": {"mode": "REGION_THEN_CLOUD", "failover_ratio": 0.7, "drop_traffic_if_unhealthy": True}},
    {"name": "web-canary", "mesh": "m1", "backends": [{"endpoint_group": "use1b"}], "locality_lb_policy": "LEAST_REQUEST"},
    {"name": "sticky", "mesh": "m1", "locality_lb_policy": "RING_HASH", "session_affinity": "HTTP_COOKIE",
     "consistent_hash": {"http_cookie": {"name": "session", "path": "/", "ttl_sec": 3600}, "minimum_ring_size": 2048},
     "backends": [{"endpoint_group": "use1a"}, {"endpoint_group": "onprem", "preference": "PREFERRED"}]},
    {"name": "by-header", "mesh": "m1", "locality_lb_policy": "MAGLEV", "session_affinity": "HEADER_FIELD",
     "consistent_hash": {"http_header_name": "x-user"}, "backends": [{"endpoint_group": "usw2"}]},
    {"name": "generated", "mesh": "m1", "locality_lb_policy": "RING_HASH", "session_affinity": "GENERATED_COOKIE",
     "backends": [{"endpoint_group": "euw1"}]},
    {"name": "random", "mesh": "m1", "locality_lb_policy": "RANDOM", "failover": {"mode": "DISABLED"},
     "backends": [{"endpoint_group": "use1a"}, {"endpoint_group": "euw1"}]},
    {"name": "grpc-svc", "mesh": "m1", "protocol": "GRPC", "backends": [{"endpoint_group": "use1a"}]},
    {"name": "partner", "mesh": "m1", "protocol": "HTTP2", "backends": [{"endpoint_group": "dns"}]},
    {"name": "db", "mesh": "m1", "protocol": "TCP", "locality_lb_policy": "RING_HASH", "session_affinity": "CLIENT_IP",
     "backends": [{"endpoint_group": "usw2"}]},
    {"name": "db-replica", "mesh": "m1", "protocol": "TCP", "backends": [{"endpoint_group": "euw1"}]},
]

WEB_ROUTE = {
    "name": "web", "meshes": ["m1"], "hostnames": ["web.example.com", "*.web.example.com", "web.example.com:8443"],
    "rules": [
        {"matches": [{"prefix_match": "/api", "ignore_case": True,
                      "header_matches": [{"header": "x-env", "exact_match": "canary"},
                                         {"header": "x-tier", "regex_match": "gold|silver"},
                                         {"header": "x-p", "prefix_match": "a"},
                                         {"header": "x-s", "suffix_match": "z"},
                                         {"header": "x-debug", "present_match": True, "invert_match": True},
                                         {"header": "x-version", "range_match": {"start": 1, "end": 10}}],
                      "query_parameters": [{"query_parameter": "beta", "exact_match": "1"},
                                           {"query_parameter": "q", "regex_match": "[a-z]+"},
                                           {"query_parameter": "flag", "present_match": True}]}],
         "action": {"destinations": [{"service_name": "web", "weight": 90}, {"service_name": "web-canary", "weight": 10}],
                    "timeout_sec": 5, "retry_policy": {"retry_conditions": ["5xx", "reset"], "num_retries": 3,
                                                       "per_try_timeout_sec": 1.5},
                    "fault_injection_policy": {"delay": {"fixed_delay_sec": 0.25, "percentage": 12.5},
                                               "abort": {"http_status": 503, "percentage": 1}},
                    "url_rewrite": {"path_prefix_rewrite": "/v2/api", "host_rewrite": "internal.example.com"},
                    "request_header_modifier": {"set": {"x-mesh": "m1", "x-empty": ""}, "add": {"x-trace": "on"},
                                                "remove": ["x-internal"]},
                    "response_header_modifier": {"set": {"cache-control": "no-store"}, "remove": ["server"]},
                    "request_mirror_policy": {"destination": {"service_name": "web-canary"}, "mirror_percent": 5},
                    "cors_policy": {"allow_origins": ["https://app.example.com", "*"],
                                    "allow_origin_regexes": [r"https://.*\.example\.com"],
                                    "allow_methods": ["GET", "POST"], "allow_headers": ["x-token"],
                                    "expose_headers": ["x-request-id"], "max_age_sec": 600,
                                    "allow_credentials": True}}},
        {"matches": [{"full_path_match": "/old"}],
         "action": {"redirect": {"host_redirect": "new.example.com", "path_redirect": "/new", "port_redirect": 8443,
                                 "response_code": "PERMANENT_REDIRECT", "https_redirect": True, "strip_query": True}}},
        {"matches": [{"regex_match": "/static/[0-9]+"}, {"prefix_match": "/sticky"}],
         "action": {"destinations": [{"service_name": "sticky", "weight": 1}, {"service_name": "by-header", "weight": 1},
                                     {"service_name": "generated", "weight": 0}]}},
        {"matches": [{"prefix_match": "/partner"}], "action": {"destinations": [{"service_name": "partner"}]}},
        {"action": {"destinations": [{"service_name": "random"}],
                    "cors_policy": {"allow_origins": ["https://x.example.com"], "disabled": True}}},
    ],
}

GRPC_ROUTE = {
    "name": "greeter", "meshes": ["m1"], "hostnames": ["greeter.example.com", "greeter.example.com:50051"],
    "rules": [
        {"matches": [{"method": {"grpc_service": "helloworld.Greeter", "grpc_method": "SayHello"},
                      "headers": [{"key": "x-user", "value": "alice"},
                                  {"key": "x-group", "value": "adm.*", "type": "REGULAR_EXPRESSION"}]},
                     {"method": {"grpc_method": "Ping", "case_sensitive": False}},
                     {"method": {"grpc_service": "helloworld\\..*", "grpc_method": "Say.*", "type": "REGULAR_EXPRESSION"}}],
         "action": {"destinations": [{"service_name": "grpc-svc"}], "timeout_sec": 2,
                    "retry_policy": {"retry_conditions": ["unavailable", "cancelled"], "num_retries": 2},
                    "fault_injection_policy": {"abort": {"http_status": 500, "percentage": 0.5}}}},
        {"action": {"destinations": [{"service_name": "grpc-svc"}], "retry_policy": {}}},
    ],
}

TCP_ROUTE = {
    "name": "db", "meshes": ["m1"],
    "rules": [
        {"matches": [{"address": "10.9.0.0/16", "port": 5432}, {"port": 6432}],
         "action": {"destinations": [{"service_name": "db"}]}},
        {"matches": [{"port": 5432}],
         "action": {"destinations": [{"service_name": "db", "weight": 3}, {"service_name": "db-replica", "weight": 1}]}},
    ],
}


def full_featured_mesh(api) -> None:
    """Mesh m1 of the api's tenant, using every feature the API has."""
    post(api, "meshes", {"name": "m1", "interception_port": 15001})
    post(api, "health-checks", {"name": "hc", "http_health_check": {"port": 8080, "request_path": "/healthz"}})
    for body in GROUPS:
        post(api, "endpoint-groups", body)
    for body in SERVICES:
        post(api, "backend-services", body)
    post(api, "http-routes", WEB_ROUTE)
    post(api, "grpc-routes", GRPC_ROUTE)
    post(api, "tcp-routes", TCP_ROUTE)
