"""A real Envoy follows endpoint health verdicts (published as the workers
publish them: endpoint-health notices), fails open when every endpoint is
UNHEALTHY, and reaches an endpoint given by host name (resolved by the replica)."""
import pytest

from service.notices import ChangeNotice, get_bus
from tests.e2e.support import create, endpoint_group, send, service, timed, to, try_send, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def reached_both(port, host):
    seen = set()
    return wait_for(lambda: seen.add(send(port, host).backend) or seen == {"one", "two"}, timeout=10,
                    what="requests reaching both backends")


def test_envoy_leaves_out_an_unhealthy_endpoint_and_fails_open_when_all_are(
        api, mesh, token, replica, start_envoy, http_backend):
    one, two = http_backend("one"), http_backend("two")
    group = endpoint_group("pair", one)
    group["endpoints"].append({"address": two.host, "port": two.port})
    create(api, "endpoint-groups", group)
    create(api, "backend-services", service("pair", mesh.name, "pair"))
    create(api, "http-routes", {"name": "pair", "meshes": [mesh.name], "hostnames": ["pair.test"],
                                "rules": [{"action": to("pair")}]})
    start_envoy(replica, token)
    wait_for(lambda: (answer := try_send(mesh.port, "pair.test")) and answer.status == 200, timeout=20,
             what="Envoy serving the pair route")
    reached_both(mesh.port, "pair.test")

    def verdicts(first, second):
        get_bus().publish(ChangeNotice("acme", mesh.name, 1, ("endpoint-health",), (("backend-services", "pair"),),
                                       (("pair", "pair", one.host, one.port, first),
                                        ("pair", "pair", two.host, two.port, second))))

    verdicts("UNHEALTHY", "HEALTHY")
    elapsed = timed(lambda: all(send(mesh.port, "pair.test").backend == "two" for _ in range(10)), timeout=5,
                    what="the UNHEALTHY endpoint left out")
    print(f"Envoy left the UNHEALTHY endpoint out {elapsed * 1000:.0f} ms after the notice")
    assert all(send(mesh.port, "pair.test").backend == "two" for _ in range(20))

    verdicts("UNHEALTHY", "UNHEALTHY")  # failing open: both are sent as UNKNOWN
    reached_both(mesh.port, "pair.test")


def test_envoy_reaches_an_endpoint_given_by_host_name(api, mesh, token, replica, start_envoy, http_backend):
    backend = http_backend("named")
    group = endpoint_group("named", backend)
    group["endpoints"] = [{"address": "localhost", "port": backend.port}]
    create(api, "endpoint-groups", group)
    create(api, "backend-services", service("named", mesh.name, "named"))
    create(api, "http-routes", {"name": "named", "meshes": [mesh.name], "hostnames": ["named.test"],
                                "rules": [{"action": to("named")}]})
    start_envoy(replica, token)
    assert wait_for(lambda: (answer := try_send(mesh.port, "named.test")) and answer.backend == "named",
                    timeout=20, what="Envoy reaching the backend by host name")
