"""Claims checked under a lock: of routes racing for one hostname (or TCP
port) in a mesh, exactly one wins, as Envoy accepts only one."""
import threading

import pytest
from django.db import connection

from service.mesh.models import Route
from tests.conftest import TenantClient
from tests.service.api_base import seed


def race(key, bodies, path):
    statuses, start = [], threading.Barrier(len(bodies))

    def post(body):
        client = TenantClient(None, key)
        start.wait()
        statuses.append(client.post(path, body, format="json").status_code)
        connection.close()

    threads = [threading.Thread(target=post, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return sorted(statuses)


@pytest.mark.django_db(transaction=True)
def test_one_of_eight_routes_racing_for_a_hostname_wins(api):
    seed(api)
    bodies = [{"name": f"r{i}", "meshes": ["m1"], "hostnames": ["same.example"],
               "rules": [{"action": {"destinations": [{"service_name": "bs-http"}]}}]} for i in range(8)]
    assert race(api.key, bodies, "/api/v1/http-routes") == [201] + [400] * 7
    assert Route.objects.filter(hostnames__contains=["same.example"]).count() == 1


@pytest.mark.django_db(transaction=True)
def test_one_of_eight_tcp_routes_racing_for_a_port_wins(api):
    seed(api)
    bodies = [{"name": f"t{i}", "meshes": ["m1"], "rules": [{"matches": [{"port": 5432}],
               "action": {"destinations": [{"service_name": "bs-tcp"}]}}]} for i in range(8)]
    assert race(api.key, bodies, "/api/v1/tcp-routes") == [201] + [400] * 7
    assert Route.objects.filter(type="tcp").count() == 1


@pytest.mark.django_db(transaction=True)
def test_routes_racing_for_overlapping_hostnames_in_any_order_never_deadlock(api):
    seed(api)
    names = [f"h{i}.example" for i in range(4)]
    # Each claims all four, in its own order: exactly one can have them.
    bodies = [{"name": f"r{i}", "meshes": ["m1"], "hostnames": names[i:] + names[:i],
               "rules": [{"action": {"destinations": [{"service_name": "bs-http"}]}}]} for i in range(4)]
    assert race(api.key, bodies, "/api/v1/http-routes") == [201] + [400] * 3


@pytest.mark.django_db(transaction=True)
def test_a_tcp_route_and_the_mesh_racing_for_a_port_never_both_take_it(api):
    seed(api)
    for attempt in range(5):
        port = 6000 + attempt
        statuses, start = {}, threading.Barrier(2)

        def send(what, method, path, body):
            client = TenantClient(None, api.key)
            start.wait()
            statuses[what] = getattr(client, method)(path, body, format="json").status_code
            connection.close()

        route = {"name": f"t{attempt}", "meshes": ["m1"], "rules": [
            {"matches": [{"port": port}], "action": {"destinations": [{"service_name": "bs-tcp"}]}}]}
        threads = [threading.Thread(target=send, args=("route", "post", "/api/v1/tcp-routes", route)),
                   threading.Thread(target=send, args=("mesh", "patch", "/api/v1/meshes/m1", {"interception_port": port}))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(statuses.values()) == [200, 400] or sorted(statuses.values()) == [201, 400], statuses
        interception = api.get("/api/v1/meshes/m1").json()["interception_port"]
        listening = Route.objects.filter(type="tcp", name=f"t{attempt}").exists()
        assert (interception == port) != listening


@pytest.mark.django_db(transaction=True)
def test_one_of_eight_routes_racing_for_a_name_wins_and_the_others_hear_why(api):
    # The unique index decides (service.mesh.api.serializers.base): the losers'
    # INSERT fails, and that is the same field-level 400 as a plain duplicate.
    seed(api)
    bodies = [{"name": "same", "meshes": ["m1"], "hostnames": [f"h{i}.example"],
               "rules": [{"action": {"destinations": [{"service_name": "bs-http"}]}}]} for i in range(8)]
    assert race(api.key, bodies, "/api/v1/http-routes") == [201] + [400] * 7
    assert Route.objects.filter(name="same").count() == 1
    error = TenantClient(None, api.key).post("/api/v1/http-routes", bodies[0], format="json").json()
    assert error["errors"] == [{"field": "name", "code": "duplicate", "message": "There is already one named 'same'."}]
