"""`interlock xds` and `interlock dev` run as an operator runs them: subprocesses
serving real gRPC, over TLS where asked."""
import datetime
import json
import os
import signal
import socket
import subprocess
import time

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from service.xds.models import Proxy
from service.xds.snapshot import CLUSTER, LISTENER
from tests.service.test_cli import free_port, interlock_script
from tests.service.xds.conftest import Stream, eventually, node

pytestmark = pytest.mark.slow


def self_signed(directory):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "xds.crt", directory / "xds.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def database_url(settings):
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def stop(process):
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
        raise


def open_stream(channel, token, **node_fields):
    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    return Stream(stub.StreamAggregatedResources, metadata).send(
        discovery_pb2.DiscoveryRequest(type_url=CLUSTER, node=node(**node_fields)))


@pytest.mark.django_db(transaction=True)
def test_interlock_xds_serves_tls_records_proxies_and_stops_on_sigterm(api, tmp_path, settings):
    assert api.post("/api/v1/meshes", {"name": "m1"}, format="json").status_code == 201
    token = api.post("/api/v1/node-tokens", {"name": "t", "mesh": "m1"}, format="json").json()["token"]
    cert, key = self_signed(tmp_path)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url(settings), "NOTICE_CHANNEL": settings.NOTICE_CHANNEL}
    server = subprocess.Popen([interlock_script(), "xds", "--port", str(port), "--tls-cert", str(cert),
                               "--tls-key", str(key), "--replica", "cli-1"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        credentials = grpc.ssl_channel_credentials(cert.read_bytes())
        with grpc.secure_channel(f"localhost:{port}", credentials) as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            with pytest.raises(grpc.RpcError) as refused:
                open_stream(channel, None).recv()
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            stream = open_stream(channel, token)
            eventually(lambda: Proxy.objects.filter(name="n1", replica="cli-1", disconnected_at__isnull=True).exists())
            assert stop(server) == 0
            stream.close()
    finally:
        if server.poll() is None:
            stop(server)
    assert Proxy.objects.get(name="n1").disconnected_at is not None  # written before it exited
    with grpc.insecure_channel(f"127.0.0.1:{port}") as plain:
        with pytest.raises(grpc.FutureTimeoutError):
            grpc.channel_ready_future(plain).result(timeout=1)


@pytest.mark.django_db(transaction=True)
def test_interlock_xds_refuses_half_a_tls_configuration(settings, tmp_path):
    cert, _ = self_signed(tmp_path)
    env = {**os.environ, "DATABASE_URL": database_url(settings)}
    result = subprocess.run([interlock_script(), "xds", "--tls-cert", str(cert)], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert '"code": "invalid_tls"' in result.stderr and "--tls-key" in result.stderr


def test_interlock_dev_serves_xds_too(tmp_path):
    api_port, xds_port = free_port(), free_port()
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "NOTICE_BUS")}
    environment["INTERLOCK_STATE_DIR"] = str(tmp_path / "state")
    server = subprocess.Popen([interlock_script(), "dev", "--port", str(api_port), "--xds-port", str(xds_port)],
                              env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{xds_port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
            with pytest.raises(grpc.RpcError) as refused:
                open_stream(channel, "ilt_000000000000_nope").recv()
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        stop(server)


@pytest.mark.django_db(transaction=True)
def test_a_second_interlock_xds_on_a_taken_port_exits_2_and_leaves_the_first_ones_proxies_alone(api, settings):
    assert api.post("/api/v1/meshes", {"name": "m1"}, format="json").status_code == 201
    token = api.post("/api/v1/node-tokens", {"name": "t", "mesh": "m1"}, format="json").json()["token"]
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url(settings), "NOTICE_CHANNEL": settings.NOTICE_CHANNEL}
    # The same replica id for both: what two replicas started with the same
    # arguments get, and what let the second mark the first one's proxies gone.
    command = [interlock_script(), "xds", "--port", str(port), "--replica", "same"]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            stream = open_stream(channel, token)
            eventually(lambda: Proxy.objects.filter(name="n1", replica="same", disconnected_at__isnull=True).exists())

            second = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                _, err = second.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                stop(second)
                pytest.fail("the second `interlock xds` on a taken port kept running")
            assert second.returncode == 2
            error = json.loads(err.strip().splitlines()[-1])
            assert error["code"] == "address_unavailable"
            assert error["field"] == "port"
            assert f"127.0.0.1:{port}" in error["message"]

            # The first replica still serves, and its proxy is still connected.
            assert first.poll() is None
            assert stream.recv().type_url == CLUSTER
            assert Proxy.objects.get(name="n1").disconnected_at is None
            stream.close()
    finally:
        stop(first)


def test_interlock_dev_on_a_taken_xds_port_exits_2(tmp_path):
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "NOTICE_BUS")}
    environment["INTERLOCK_STATE_DIR"] = str(tmp_path / "state")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        xds_port = taken.getsockname()[1]
        result = subprocess.run([interlock_script(), "dev", "--port", str(free_port()), "--xds-port", str(xds_port)],
                                env=environment, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    error = json.loads(result.stderr.strip().splitlines()[-1])
    assert error["code"] == "address_unavailable"
    assert error["field"] == "xds_port"
    assert f"127.0.0.1:{xds_port}" in error["message"]


@pytest.mark.django_db(transaction=True)
def test_sigterm_writes_the_records_it_can_and_exits_promptly_though_one_is_refused(api, other_api, settings):
    """The mesh of a connected proxy is deleted, so the database refuses its record;
    SIGTERM still writes the disconnect of another tenant's proxy, and exits."""
    tokens = {}
    for client in (api, other_api):
        assert client.post("/api/v1/meshes", {"name": "m1"}, format="json").status_code == 201
        tokens[client.tenant.name] = client.post("/api/v1/node-tokens", {"name": "t", "mesh": "m1"},
                                                 format="json").json()["token"]
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url(settings), "NOTICE_CHANNEL": settings.NOTICE_CHANNEL}
    server = subprocess.Popen([interlock_script(), "xds", "--port", str(port), "--replica", "cli-2"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            orphan = open_stream(channel, tokens["acme"], name="orphan")
            eventually(lambda: Proxy.objects.filter(name="orphan").exists())
            assert api.delete("/api/v1/node-tokens/t").status_code == 204
            deleted = api.delete("/api/v1/meshes/m1")
            assert deleted.status_code == 204, deleted.json()
            orphan.send(discovery_pb2.DiscoveryRequest(type_url=LISTENER))
            control = open_stream(channel, tokens["globex"], name="ctl", tenant="globex")
            eventually(lambda: Proxy.objects.filter(name="ctl", disconnected_at__isnull=True).exists())
            started = time.monotonic()
            assert stop(server) == 0
            stopped_in = time.monotonic() - started
            orphan.close()
            control.close()
    finally:
        if server.poll() is None:
            stop(server)
    assert Proxy.objects.get(name="ctl").disconnected_at is not None  # written before it exited
    assert not Proxy.objects.filter(name="orphan").exists()
    assert stopped_in < 8, stopped_in
