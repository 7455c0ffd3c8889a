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
