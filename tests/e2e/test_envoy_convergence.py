"""Changes made through the API reach a real Envoy: within a second on a
healthy replica, and after the xDS server was killed and restarted (Envoy
serving its last configuration meanwhile)."""
import json
import time

import pytest

from tests.e2e.support import create, endpoint_group, patch, send, service, timed, to, try_send, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def blue_green(api, mesh, http_backend):
    """Services blue and green, each on its own backend, and the route `shop` (shop.test) sending to blue."""
    for name in ("blue", "green"):
        create(api, "endpoint-groups", endpoint_group(name, http_backend(name)))
        create(api, "backend-services", service(name, mesh.name, name))
    create(api, "http-routes", {"name": "shop", "meshes": [mesh.name], "hostnames": ["shop.test"],
                                "rules": [{"action": to(("blue", 100), ("green", 0))}]})


def set_weights(api, blue: int, green: int):
    patch(api, "http-routes/shop", {"rules": [{"action": to(("blue", blue), ("green", green))}]})


def serves(port, name):
    answer = try_send(port, "shop.test")
    return answer is not None and answer.backend == name


def all_reach(port, name, count=20):
    return all(send(port, "shop.test").backend == name for _ in range(count))


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_weight_and_cluster_changes_reach_envoy_within_a_second(api, mesh, token, replica, start_envoy, blue_green,
                                                                 delta):
    proxy = start_envoy(replica, token, delta=delta)
    wait_for(lambda: serves(mesh.port, "blue"), timeout=20, what="Envoy serving blue")
    for blue, green, now in ((0, 100, "green"), (100, 0, "blue")):
        set_weights(api, blue, green)  # returns after the 2xx
        elapsed = timed(lambda: serves(mesh.port, now), timeout=5, what=f"weights {blue}/{green}")
        print(f"{'delta' if delta else 'sotw'}: weights {blue}/{green} followed {elapsed * 1000:.0f} ms after the 2xx")
        assert elapsed < 1.0, f"Envoy followed the weights {blue}/{green} after {elapsed:.3f}s"
        assert all_reach(mesh.port, now)
    # A cluster change: Envoy warms the new cluster and must get its endpoints again to switch to it.
    patch(api, "backend-services/blue", {"circuit_breakers": {"max_connections": 7}})
    elapsed = timed(lambda: active_cluster(proxy, "blue").get("circuit_breakers"), timeout=5,
                    what="the changed cluster active")
    print(f"{'delta' if delta else 'sotw'}: a cluster change active {elapsed * 1000:.0f} ms after the 2xx")
    assert elapsed < 1.0
    assert active_cluster(proxy, "blue")["circuit_breakers"]["thresholds"][0]["max_connections"] == 7
    assert all_reach(mesh.port, "blue")


def active_cluster(proxy, name: str) -> dict:
    """The cluster as Envoy uses it (not one still warming), from its config_dump."""
    status, body = proxy.admin_get(f"/config_dump?resource=dynamic_active_clusters&name_regex=^{name}$")
    assert status == 200, body
    configs = json.loads(body).get("configs", [])
    return configs[0]["cluster"] if configs else {}


def test_envoy_keeps_its_config_while_the_server_is_down_and_follows_it_after_restart(
        api, mesh, token, start_replica, start_envoy, blue_green):
    replica = start_replica()
    proxy = start_envoy(replica, token)
    wait_for(lambda: serves(mesh.port, "blue"), timeout=20, what="Envoy serving blue")

    replica.stop()
    wait_for(lambda: connected_state(proxy) == 0, timeout=10, what="Envoy noticing the server is gone")
    set_weights(api, 0, 100)  # stored; no server to tell Envoy
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:  # Envoy keeps serving its last configuration
        assert all_reach(mesh.port, "blue", count=5)

    replica = start_replica(port=replica.port)
    wait_for(lambda: serves(mesh.port, "green"), timeout=15, what="the change made while down, after restart")
    assert connected_state(proxy) == 1
    set_weights(api, 100, 0)
    elapsed = timed(lambda: serves(mesh.port, "blue"), timeout=5, what="the next change after restart")
    print(f"after restart: a change followed {elapsed * 1000:.0f} ms after the 2xx")
    assert elapsed < 1.0
    assert all_reach(mesh.port, "blue")


def connected_state(proxy) -> int:
    """Envoy's gauge: 1 while its xDS stream is up."""
    status, body = proxy.admin_get("/stats?filter=^control_plane.connected_state$")
    assert status == 200, body
    return int(body.split(":")[1])
