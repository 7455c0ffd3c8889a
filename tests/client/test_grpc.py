"""grpcio's own xDS client reads the gRPC bootstrap the client writes and
streams from the server with the node id, locality and token in it."""
import dataclasses
import json
import os
import subprocess
import sys

import pytest

from client.bootstrap import grpc_bootstrap
from tests.client.conftest import TOKEN

pytestmark = pytest.mark.slow

# A proxyless client: an xds: target makes grpc load the bootstrap from the
# environment and open an ADS stream for the listener `checkout`.
CLIENT = """
import grpc
channel = grpc.insecure_channel("xds:///checkout")
try:
    grpc.channel_ready_future(channel).result(timeout=60)
except grpc.FutureTimeoutError:
    pass
"""


def stream_of_a_grpc_client(document, recorder):
    env = {**os.environ, "GRPC_XDS_BOOTSTRAP_CONFIG": json.dumps(document)}
    env.pop("GRPC_XDS_BOOTSTRAP", None)  # it would take precedence
    process = subprocess.Popen(
        [sys.executable, "-c", CLIENT], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        return recorder.next_stream()
    finally:
        process.kill()
        _, stderr = process.communicate()
        print(stderr)  # grpc's complaints about the bootstrap, shown if the test fails


def assert_node_and_token(stream):
    assert stream.kind == "sotw"
    request = stream.first_request
    assert request.node.id == "tenants/acme/meshes/prod/nodes/web-1"
    assert (request.node.locality.region, request.node.locality.zone) == ("eu-west-1", "eu-west-1a")
    assert request.node.metadata.fields["interlock_token"].string_value == TOKEN
    assert request.node.metadata.fields["cloud"].string_value == "aws"
    assert request.type_url == "type.googleapis.com/envoy.config.listener.v3.Listener"
    assert list(request.resource_names) == ["checkout"]


def test_grpc_accepts_the_plaintext_bootstrap(options, ads_server):
    document = grpc_bootstrap(dataclasses.replace(options, server=f"127.0.0.1:{ads_server.port}"))
    assert_node_and_token(stream_of_a_grpc_client(document, ads_server.recorder))


def test_grpc_accepts_the_tls_bootstrap_and_trusts_its_ca(options, tls_ads_server, pki):
    # The test CA is in no system trust store: a stream proves the bootstrap's CA was used.
    document = grpc_bootstrap(dataclasses.replace(options, server=f"localhost:{tls_ads_server.port}", tls_ca=pki.ca))
    assert_node_and_token(stream_of_a_grpc_client(document, tls_ads_server.recorder))
