"""Fixtures of the client tests: a node token, a private CA with a server
certificate for localhost, and a small real ADS server that records who
connected (the stand-in for Interlock's xDS server, which is not under test)."""
import datetime
import queue
from concurrent import futures
from dataclasses import dataclass

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from envoy.service.discovery.v3 import ads_pb2_grpc

from client.bootstrap import BootstrapOptions

TOKEN = "ilt_0123456789ab_Zm9vYmFyLWJhei1xdXV4LXNlY3JldC10b2tlbi0xMjM0NTY"


@pytest.fixture
def options():
    return BootstrapOptions(
        server="xds.example.com:443", tenant="acme", mesh="prod", node="web-1", token=TOKEN,
        cloud="aws", region="eu-west-1", zone="eu-west-1a",
    )


@dataclass(frozen=True)
class Pki:
    ca: str  # PEM CA bundle path
    cert_pem: bytes  # the server's certificate (localhost, 127.0.0.1)
    key_pem: bytes


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject, issuer, public_key, signing_key, *, ca, san=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def make_pki(directory, name="ca") -> Pki:
    import ipaddress

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate(_name(f"test {name}"), _name(f"test {name}"), ca_key.public_key(), ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server_cert = _certificate(_name("localhost"), ca_cert.subject, server_key.public_key(), ca_key, ca=False, san=san)
    ca_path = directory / f"{name}.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    key_pem = server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Pki(str(ca_path), server_cert.public_bytes(serialization.Encoding.PEM), key_pem)


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@dataclass(frozen=True)
class Stream:
    kind: str  # "sotw" or "delta"
    metadata: dict
    first_request: object


class RecordingAds(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    """Records each stream's metadata and first request, then holds it open."""

    def __init__(self):
        self.streams = queue.Queue()

    def StreamAggregatedResources(self, requests, context):
        yield from self._hold("sotw", requests, context)

    def DeltaAggregatedResources(self, requests, context):
        yield from self._hold("delta", requests, context)

    def _hold(self, kind, requests, context):
        self.streams.put(Stream(kind, dict(context.invocation_metadata()), next(requests)))
        for _ in requests:
            pass
        return
        yield

    def next_stream(self, timeout=20.0) -> Stream:
        return self.streams.get(timeout=timeout)


@dataclass
class AdsServer:
    port: int
    recorder: RecordingAds


def start_ads_server(credentials=None, port=0):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    recorder = RecordingAds()
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(recorder, server)
    if credentials is None:
        port = server.add_insecure_port(f"127.0.0.1:{port}")
    else:
        port = server.add_secure_port(f"127.0.0.1:{port}", credentials)
    server.start()
    return server, AdsServer(port, recorder)


@pytest.fixture
def ads_server():
    server, handle = start_ads_server()
    yield handle
    server.stop(0)


@pytest.fixture
def tls_ads_server(pki):
    server, handle = start_ads_server(grpc.ssl_server_credentials([(pki.key_pem, pki.cert_pem)]))
    yield handle
    server.stop(0)
