"""Requests through a real Envoy configured by a real replica from policy
written through the API reach the backends the policy selects."""
import pytest

from tests.e2e.support import create, endpoint_group, post, send, service, to, try_send, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_host_path_headers_query_fault_and_retries_route_as_configured(api, mesh, token, replica, start_envoy,
                                                                       http_backend):
    backends = {name: http_backend(name) for name in ("web", "api", "canary", "other")}
    for name, backend in backends.items():
        create(api, "endpoint-groups", endpoint_group(name, backend))
        create(api, "backend-services", service(name, mesh.name, name))
    create(api, "http-routes", {"name": "shop", "meshes": [mesh.name], "hostnames": ["shop.test"], "rules": [
        {"matches": [{"prefix_match": "/", "header_matches": [{"header": "x-canary", "exact_match": "yes"}]},
                     {"prefix_match": "/", "query_parameters": [{"query_parameter": "version",
                                                                 "exact_match": "beta"}]}],
         "action": to("canary")},
        {"matches": [{"prefix_match": "/api/"}], "action": to("api")},
        {"matches": [{"prefix_match": "/fault"}],
         "action": {**to("web"), "fault_injection_policy": {"abort": {"http_status": 418}}}},
        {"matches": [{"prefix_match": "/flaky"}],
         "action": {**to("web"), "retry_policy": {"retry_conditions": ["5xx"], "num_retries": 2}}},
        {"action": to("web")},
    ]})
    create(api, "http-routes", {"name": "other", "meshes": [mesh.name], "hostnames": ["other.test"],
                                "rules": [{"action": to("other")}]})
    start_envoy(replica, token)

    def reached(host, path, headers=None):
        return send(mesh.port, host, path, headers).backend

    wait_for(lambda: (answer := try_send(mesh.port, "shop.test")) and answer.backend == "web",
             timeout=20, what="Envoy serving the shop route")
    # The Host header picks the route, the path the rule.
    assert reached("shop.test", "/api/items") == "api"
    assert backends["api"].requests[-1]["path"] == "/api/items"
    assert reached("other.test", "/api/items") == "other"
    assert reached("shop.test:15001", "/") == "web"  # a Host with a port matches its hostname
    assert send(mesh.port, "nobody.test", "/").status == 404
    # Header and query parameter matches, and what does not match them.
    assert reached("shop.test", "/api/items", {"x-canary": "yes"}) == "canary"
    assert reached("shop.test", "/", {"x-canary": "no"}) == "web"
    assert reached("shop.test", "/?version=beta") == "canary"
    assert reached("shop.test", "/?version=alpha") == "web"
    # A fault-injection abort answers with its status and reaches no backend.
    seen_by_web = len(backends["web"].requests)
    assert send(mesh.port, "shop.test", "/fault").status == 418
    assert len(backends["web"].requests) == seen_by_web
    # Retries: two 503s are retried away; a third failure is the answer.
    backends["web"].fail_next(2)
    assert send(mesh.port, "shop.test", "/flaky").status == 200
    assert [r["path"] for r in list(backends["web"].requests)[seen_by_web:]] == ["/flaky"] * 3
    backends["web"].fail_next(3)
    assert send(mesh.port, "shop.test", "/flaky").status == 503
    assert len(backends["web"].requests) == seen_by_web + 6
    # Without a retry policy a failure is not retried.
    backends["web"].fail_next(1)
    assert send(mesh.port, "shop.test", "/").status == 503
    assert len(backends["web"].requests) == seen_by_web + 7


def test_traffic_fails_over_to_the_next_region_then_the_next_cloud(api, mesh, token, replica, start_envoy,
                                                                   http_backend):
    localities = {"east": ("aws", "us-east-1"), "west": ("aws", "us-west-2"), "gcp": ("gcp", "us-east1")}
    backends = {name: http_backend(name) for name in localities}
    for name, (cloud, region) in localities.items():
        create(api, "endpoint-groups", endpoint_group(name, backends[name], cloud=cloud, region=region))
    create(api, "backend-services", service("shop", mesh.name, "gcp", "west", "east"))
    create(api, "http-routes", {"name": "shop", "meshes": [mesh.name], "hostnames": ["shop.test"],
                                "rules": [{"action": to("shop")}]})
    start_envoy(replica, token, cloud="aws", region="us-east-1")

    def only(name):
        """Twenty requests in a row all reach backend `name`."""
        return all(send(mesh.port, "shop.test").backend == name for _ in range(20))

    wait_for(lambda: try_send(mesh.port, "shop.test") and only("east"), timeout=20,
             what="the proxy's own region serving")
    for gone, next_one in (("east", "west"), ("west", "gcp")):
        backend = backends[gone]
        post(api, f"endpoint-groups/{gone}/detach", {"endpoints": [{"address": backend.host, "port": backend.port}]})
        wait_for(lambda: only(next_one), timeout=5, what=f"failover from {gone} to {next_one}")
