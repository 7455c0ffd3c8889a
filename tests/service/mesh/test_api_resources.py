"""Every policy resource through the generic API test base."""
from tests.service.api_base import PolicyAPITests


def http_rules(weights=(90, 10)):
    return [{
        "matches": [{"prefix_match": "/api", "header_matches": [{"header": "x-canary", "exact_match": "1"}],
                     "query_parameters": [{"query_parameter": "debug", "present_match": True}]}],
        "action": {
            "destinations": [{"service_name": "bs-http", "weight": weights[0]},
                             {"service_name": "bs-http2", "weight": weights[1]}],
            "timeout_sec": 10,
            "retry_policy": {"retry_conditions": ["5xx", "reset"], "num_retries": 3, "per_try_timeout_sec": 2},
            "fault_injection_policy": {"abort": {"http_status": 503, "percentage": 1}},
            "url_rewrite": {"path_prefix_rewrite": "/v2"},
            "request_header_modifier": {"set": {"x-mesh": "m1"}, "remove": ["x-debug"]},
            "request_mirror_policy": {"destination": {"service_name": "bs-http2"}, "mirror_percent": 5},
            "cors_policy": {"allow_origins": ["https://example.com"], "allow_methods": ["GET"]},
        },
    }]


class TestMeshes(PolicyAPITests):
    path = "meshes"
    create_body = {"name": "m2", "description": "second", "labels": {"team": "core"}, "interception_port": 15001}
    update_body = {"interception_port": 15002}


class TestHealthChecks(PolicyAPITests):
    path = "health-checks"
    create_body = {"name": "hc2", "check_interval_sec": 10, "timeout_sec": 2, "healthy_threshold": 3,
                   "unhealthy_threshold": 2, "source_regions": ["us-east-1", "eu-west-1"],
                   "grpc_health_check": {"port": 9090, "grpc_service_name": "shop"}}
    update_body = {"timeout_sec": 3}


class TestEndpointGroups(PolicyAPITests):
    path = "endpoint-groups"
    create_body = {"name": "eg3", "locality": {"cloud": "gcp", "region": "europe-west1", "zone": "europe-west1-b"},
                   "max_rate_per_endpoint": 50, "capacity_scaler": 0.5,
                   "scaler": {"webhook": {"url": "https://scaler.example/hook"}},
                   "endpoints": [{"address": "10.1.0.1", "port": 80, "weight": 2, "metadata": {"v": "1"}},
                                 {"address": "backend.internal", "port": 80}]}
    update_body = {"capacity_scaler": 1.0}


class TestBackendServices(PolicyAPITests):
    path = "backend-services"
    create_body = {
        "name": "bs3", "mesh": "m1", "protocol": "HTTP2", "health_checks": ["hc1"],
        "backends": [{"endpoint_group": "eg1", "balancing_mode": "RATE", "max_rate_per_endpoint": 100},
                     {"endpoint_group": "eg2", "preference": "PREFERRED"}],
        "locality_lb_policy": "RING_HASH", "timeout_sec": 20, "session_affinity": "HEADER_FIELD",
        "circuit_breakers": {"max_connections": 100, "max_requests": 1000},
        "outlier_detection": {"consecutive_errors": 5, "interval_sec": 10, "base_ejection_time_sec": 30},
        "consistent_hash": {"http_header_name": "x-user", "minimum_ring_size": 1024},
        "failover": {"mode": "REGION_THEN_CLOUD", "failover_ratio": 0.7},
    }
    update_body = {"timeout_sec": 25}


class TestHttpRoutes(PolicyAPITests):
    path = "http-routes"
    create_body = {"name": "web", "meshes": ["m1"], "hostnames": ["web.example", "*.web.example"],
                   "rules": http_rules()}
    update_body = {"rules": http_rules((50, 50))}


class TestGrpcRoutes(PolicyAPITests):
    path = "grpc-routes"
    create_body = {"name": "rpc", "meshes": ["m1"], "hostnames": ["rpc.example"], "rules": [{
        "matches": [{"method": {"grpc_service": "shop.Cart", "grpc_method": "Add"},
                     "headers": [{"key": "x-env", "value": "prod"}]}],
        "action": {"destinations": [{"service_name": "bs-grpc"}], "timeout_sec": 5,
                   "retry_policy": {"retry_conditions": ["unavailable"], "num_retries": 2}},
    }]}
    update_body = {"hostnames": ["rpc.example", "rpc2.example"]}


class TestTcpRoutes(PolicyAPITests):
    path = "tcp-routes"
    create_body = {"name": "db", "meshes": ["m1"], "rules": [{
        "matches": [{"address": "10.0.0.0/8", "port": 5432}],
        "action": {"destinations": [{"service_name": "bs-tcp"}]},
    }]}
    update_body = {"description": "postgres"}


class TestAutoscalingPolicies(PolicyAPITests):
    path = "autoscaling-policies"
    create_body = {"name": "eg1-scale", "target": "eg1", "min_replicas": 2, "max_replicas": 10,
                   "cooldown_period": 120, "load_balancing_utilization": {"target": 0.8},
                   "scale_in_control": {"max_scaled_in_replicas": {"percent": 20}, "time_window_sec": 300},
                   "mode": "ONLY_SCALE_OUT"}
    update_body = {"max_replicas": 20}
