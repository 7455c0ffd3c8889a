"""Proxies join while the database is away: a replica keeps the node tokens
it verified (hashed, in a file under INTERLOCK_STATE_DIR), so a token seen
before still connects, also to a replica restarted during the outage, and is
served once the database is back. Real processes: `interlock xds` against a
Postgres of the test's own, stopped and started again."""
import json
import os
import subprocess
import sys
import uuid

import grpc
import pytest

from service.xds.snapshot import LISTENER
from tests.service.test_cli import free_port, interlock_script
from tests.service.xds.conftest import Stream, eventually, node, sotw_request
from tests.service.xds.test_cli_xds import stop

pytestmark = pytest.mark.slow

SEED = """
import django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "service.settings")
django.setup()
from rest_framework.test import APIClient
from service.tenants.services import create_tenant

tenant, key = create_tenant("acme")
client = APIClient()
client.credentials(HTTP_AUTHORIZATION=f"Bearer {key.plaintext}")
assert client.post("/api/v1/meshes", {"name": "m1"}, format="json").status_code == 201
token = client.post("/api/v1/node-tokens", {"name": "t", "mesh": "m1"}, format="json").json()["token"]
print(token, key.plaintext)
"""


@pytest.fixture
def environment(private_postgres, tmp_path):
    env = {**os.environ, "DATABASE_URL": private_postgres.url, "INTERLOCK_STATE_DIR": str(tmp_path),
           "NOTICE_CHANNEL": f"interlock-test:{uuid.uuid4().hex}", "XDS_CREDENTIAL_RECHECK_SEC": "0.5"}
    subprocess.run([interlock_script(), "migrate"], env=env, check=True, capture_output=True, timeout=120)
    return env


def seed(env) -> tuple[str, str]:
    """A tenant, its mesh m1 and a node token of it; the token and the tenant's API key."""
    done = subprocess.run([sys.executable, "-c", SEED], env=env, check=True, capture_output=True, text=True,
                          timeout=60)
    token, key = done.stdout.strip().splitlines()[-1].split()
    return token, key


def client_status(channel, key):
    from envoy.service.status.v3 import csds_pb2, csds_pb2_grpc

    return csds_pb2_grpc.ClientStatusDiscoveryServiceStub(channel).FetchClientStatus(
        csds_pb2.ClientStatusRequest(), metadata=(("authorization", f"Bearer {key}"),), timeout=10)


def start_replica(env, port):
    process = subprocess.Popen([interlock_script(), "xds", "--port", str(port), "--replica", "outage-1"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    grpc.channel_ready_future(channel).result(timeout=30)
    return process, channel


def connect(channel, token, name="n1"):
    from envoy.service.discovery.v3 import ads_pb2_grpc

    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
    return Stream(stub.StreamAggregatedResources, (("authorization", f"Bearer {token}"),)).send(
        sotw_request(LISTENER, node(name)))


def test_a_token_seen_before_connects_to_a_replica_restarted_while_the_database_is_away(
        private_postgres, environment, tmp_path):
    token, key = seed(environment)
    port = free_port()
    kept = tmp_path / f"xds-{port}-credentials.json"
    replica, channel = start_replica(environment, port)
    try:
        assert connect(channel, token).recv().type_url == LISTENER
        client_status(channel, key)
        eventually(lambda: kept.exists() and len(json.loads(kept.read_text())) == 2)
        assert token not in kept.read_text() and key not in kept.read_text()  # kept by a hash only

        private_postgres.stop()
        channel.close()
        assert stop(replica) == 0
        replica, channel = start_replica(environment, port)

        # Known: accepted, and waiting for its mesh's snapshot (this replica has none yet).
        waiting = connect(channel, token, "n2")
        assert waiting.nothing_within(2.0)
        # Unknown: cannot be checked now.
        with pytest.raises(grpc.RpcError) as refused:
            connect(channel, token[:-4] + "zzzz").recv()
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        # A known API key passes, but CSDS reads the proxy records: unavailable, said so.
        with pytest.raises(grpc.RpcError) as refused:
            client_status(channel, key)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "proxy records cannot be read now" in refused.value.details()

        private_postgres.start()
        assert waiting.recv(timeout=30).type_url == LISTENER  # served once the database is back
    finally:
        channel.close()
        if replica.poll() is None:
            stop(replica)
