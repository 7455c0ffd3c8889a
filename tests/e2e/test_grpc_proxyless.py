"""A real grpcio client dialling `xds:///<hostname>` with the bootstrap
`interlock-bootstrap grpc` writes reaches a gRPC backend through the
replica's configuration, and follows a route change on the same channel."""
import pytest

from client.bootstrap import BootstrapOptions, grpc_bootstrap
from tests.e2e.support import create, endpoint_group, patch, proxy_status, service, timed, to, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def client_of(grpc_client, replica, mesh, token, hostname: str):
    """A proxyless gRPC client of `mesh` dialling xds:///<hostname>, bootstrapped as `interlock-bootstrap grpc` does."""
    options = BootstrapOptions(server=f"127.0.0.1:{replica.port}", tenant="acme", mesh=mesh.name,
                               node=f"{hostname.split('.')[0]}-client", token=token, cloud="aws",
                               region="us-east-1", zone="us-east-1a")
    return grpc_client(f"xds:///{hostname}", grpc_bootstrap(options))


def test_grpc_client_reaches_the_backend_its_route_selects_and_follows_a_change(api, mesh, token, replica,
                                                                                grpc_backend, grpc_client):
    for name in ("one", "two"):
        create(api, "endpoint-groups", endpoint_group(name, grpc_backend(name)))
        create(api, "backend-services", service(name, mesh.name, name, protocol="GRPC"))
    match = {"method": {"grpc_service": "interlock.test.Echo", "grpc_method": "Who"}}
    create(api, "grpc-routes", {"name": "greeter", "meshes": [mesh.name], "hostnames": ["greeter.test"],
                                "rules": [{"matches": [match], "action": to("one")}]})
    client = client_of(grpc_client, replica, mesh, token, "greeter.test")

    assert wait_for(lambda: client.call() == "one", timeout=20, what="the first call reaching backend one")
    patch(api, "grpc-routes/greeter", {"rules": [{"matches": [match], "action": to("two")}]})
    elapsed = timed(lambda: client.call() == "two", timeout=5, what="the route change reaching the client")
    print(f"gRPC client followed the route change {elapsed * 1000:.0f} ms after the 2xx")
    assert all(client.call() == "two" for _ in range(10))


    def all_acked():
        status = proxy_status(api, "greeter-client", mesh.name)
        assert set(status) == {"Listener", "RouteConfiguration", "Cluster", "ClusterLoadAssignment"}, status
        return all(s["nack"] is None and s["version_acked"] == s["version_sent"] for s in status.values())

    wait_for(all_acked, timeout=5, what="the proxies API showing every type ACKed")


def test_grpc_client_reaches_a_backend_given_by_host_name(api, mesh, token, replica, grpc_backend, grpc_client):
    """gRPC refuses STRICT_DNS clusters and names in EDS: the replica resolves
    the name (localhost -> 127.0.0.1) and sends the address in EDS."""
    backend = grpc_backend("named")
    group = endpoint_group("named", backend)
    group["endpoints"] = [{"address": "localhost", "port": backend.port}]
    create(api, "endpoint-groups", group)
    create(api, "backend-services", service("named", mesh.name, "named", protocol="GRPC"))
    create(api, "grpc-routes", {"name": "by-name", "meshes": [mesh.name], "hostnames": ["named.test"],
                                "rules": [{"action": to("named")}]})
    client = client_of(grpc_client, replica, mesh, token, "named.test")

    assert wait_for(lambda: client.call() == "named", timeout=20, what="the call reaching the backend by host name")

    def all_acked():
        status = proxy_status(api, "named-client", mesh.name)
        assert set(status) == {"Listener", "RouteConfiguration", "Cluster", "ClusterLoadAssignment"}, status
        return all(s["nack"] is None and s["version_acked"] == s["version_sent"] for s in status.values())

    wait_for(all_acked, timeout=5, what="every type ACKed, the cluster and its endpoints too")


def test_grpc_client_follows_endpoint_health_and_fails_open_when_all_are_unhealthy(
        api, mesh, token, replica, grpc_backend, grpc_client):
    """Verdicts arrive as endpoint-health notices (published here as the workers
    publish them): gRPC stops calling an UNHEALTHY endpoint, and calls them all
    again once every endpoint is UNHEALTHY (gRPC has no panic mode of its own)."""
    from service.notices import ChangeNotice, get_bus

    one, two = grpc_backend("one"), grpc_backend("two")
    group = endpoint_group("pair", one)
    group["endpoints"].append({"address": two.host, "port": two.port})
    create(api, "endpoint-groups", group)
    create(api, "backend-services", service("pair", mesh.name, "pair", protocol="GRPC"))
    create(api, "grpc-routes", {"name": "pair", "meshes": [mesh.name], "hostnames": ["pair.test"],
                                "rules": [{"action": to("pair")}]})
    client = client_of(grpc_client, replica, mesh, token, "pair.test")
    answers = set()
    assert wait_for(lambda: answers.add(client.call()) or answers == {"one", "two"}, timeout=20,
                    what="calls reaching both backends")

    def verdicts(first, second):
        get_bus().publish(ChangeNotice("acme", mesh.name, 1, ("endpoint-health",), (("backend-services", "pair"),),
                                       (("pair", "pair", one.host, one.port, first),
                                        ("pair", "pair", two.host, two.port, second))))

    verdicts("UNHEALTHY", "HEALTHY")
    elapsed = timed(lambda: all(client.call() == "two" for _ in range(10)), timeout=5,
                    what="the UNHEALTHY endpoint left out")
    print(f"gRPC client left the UNHEALTHY endpoint out {elapsed * 1000:.0f} ms after the notice")
    assert all(client.call() == "two" for _ in range(20))

    verdicts("UNHEALTHY", "UNHEALTHY")
    answers.clear()
    assert wait_for(lambda: answers.add(client.call()) or answers == {"one", "two"}, timeout=5,
                    what="both endpoints called again, failing open")
