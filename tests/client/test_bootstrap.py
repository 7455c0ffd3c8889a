import dataclasses
import os

import pytest
from google.protobuf import json_format

# The typed_config messages the Envoy bootstrap carries, registered for Any.
import envoy.extensions.transport_sockets.tls.v3.tls_pb2  # noqa: F401
import envoy.extensions.upstreams.http.v3.http_protocol_options_pb2  # noqa: F401
from envoy.config.bootstrap.v3.bootstrap_pb2 import Bootstrap
from rest_framework.serializers import ValidationError

from client.bootstrap import BootstrapError, NODE_TOKEN_KIND, envoy_bootstrap, grpc_bootstrap
from service.mesh import validation
from service.tenants import secrets
from service.tenants.services import NODE_TOKEN_KIND as SERVICE_NODE_TOKEN_KIND
from tests.client.conftest import TOKEN


def xds_cluster(document):
    (cluster,) = document["static_resources"]["clusters"]
    return cluster


def test_envoy_node_identity_and_locality(options):
    node = envoy_bootstrap(options)["node"]
    assert node == {
        "id": "tenants/acme/meshes/prod/nodes/web-1",
        "cluster": "prod",
        "locality": {"region": "eu-west-1", "zone": "eu-west-1a"},
        "metadata": {"cloud": "aws"},
    }


def test_a_node_may_be_named_after_its_host(options):
    named = dataclasses.replace(options, node="ip-10-0-0-7.ec2.internal")
    assert envoy_bootstrap(named)["node"]["id"] == "tenants/acme/meshes/prod/nodes/ip-10-0-0-7.ec2.internal"


def test_empty_locality_and_cloud_are_left_out(options):
    node = envoy_bootstrap(dataclasses.replace(options, cloud="", region="", zone=""))["node"]
    assert "locality" not in node and node["metadata"] == {}


def test_envoy_ads_state_of_the_world_by_default(options):
    dynamic = envoy_bootstrap(options)["dynamic_resources"]
    ads = dynamic["ads_config"]
    assert ads["api_type"] == "GRPC"
    assert ads["transport_api_version"] == "V3"
    assert ads["set_node_on_first_message_only"] is True
    # Envoy waits for its first listeners and clusters for ever, not ready meanwhile.
    assert dynamic["lds_config"] == dynamic["cds_config"] == {
        "ads": {}, "resource_api_version": "V3", "initial_fetch_timeout": "0s"}


def test_envoy_ads_delta(options):
    ads = envoy_bootstrap(dataclasses.replace(options, delta=True))["dynamic_resources"]["ads_config"]
    assert ads["api_type"] == "DELTA_GRPC"


def test_envoy_token_is_bearer_metadata_of_the_xds_service(options):
    document = envoy_bootstrap(options)
    (service,) = document["dynamic_resources"]["ads_config"]["grpc_services"]
    assert service["envoy_grpc"]["cluster_name"] == "interlock_xds"
    assert service["initial_metadata"] == [{"key": "authorization", "value": f"Bearer {TOKEN}"}]
    # Nowhere else: node metadata is echoed in admin /server_info and config dumps.
    assert str(document).count(TOKEN) == 1


def test_envoy_admin_on_loopback(options):
    admin = envoy_bootstrap(dataclasses.replace(options, admin_port=19001))["admin"]
    assert admin == {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 19001}}}


def test_envoy_plaintext_cluster_by_name_is_resolved(options):
    cluster = xds_cluster(envoy_bootstrap(options))
    assert cluster["name"] == "interlock_xds"
    assert cluster["type"] == "LOGICAL_DNS"
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address == {"socket_address": {"address": "xds.example.com", "port_value": 443}}
    http2 = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert http2["explicit_http_config"]["http2_protocol_options"]["connection_keepalive"]["interval"]
    assert "transport_socket" not in cluster


@pytest.mark.parametrize("server, host", [("10.0.0.7:18000", "10.0.0.7"), ("[2001:db8::1]:18000", "2001:db8::1")])
def test_envoy_cluster_by_address_is_static(options, server, host):
    cluster = xds_cluster(envoy_bootstrap(dataclasses.replace(options, server=server)))
    assert cluster["type"] == "STATIC"
    address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert address["socket_address"]["address"] == host


def test_envoy_tls_verifies_the_server_name_against_the_ca(options, pki):
    cluster = xds_cluster(envoy_bootstrap(dataclasses.replace(options, tls_ca=pki.ca)))
    context = cluster["transport_socket"]["typed_config"]
    assert context["sni"] == "xds.example.com"
    validation_context = context["common_tls_context"]["validation_context"]
    assert validation_context["trusted_ca"] == {"filename": pki.ca}
    assert validation_context["match_typed_subject_alt_names"] == [
        {"san_type": "DNS", "matcher": {"exact": "xds.example.com"}}
    ]
    assert context["common_tls_context"]["alpn_protocols"] == ["h2"]


def test_envoy_tls_to_an_address_checks_the_ip_san_and_sends_no_sni(options, pki):
    document = envoy_bootstrap(dataclasses.replace(options, server="10.0.0.7:443", tls_ca=pki.ca))
    context = xds_cluster(document)["transport_socket"]["typed_config"]
    assert "sni" not in context
    assert context["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"] == [
        {"san_type": "IP_ADDRESS", "matcher": {"exact": "10.0.0.7"}}
    ]


def test_envoy_server_name_overrides_sni_and_verification(options, pki):
    document = envoy_bootstrap(dataclasses.replace(options, server="10.0.0.7:443", tls_ca=pki.ca, server_name="xds.internal"))
    context = xds_cluster(document)["transport_socket"]["typed_config"]
    assert context["sni"] == "xds.internal"
    assert context["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"][0]["matcher"] == {
        "exact": "xds.internal"
    }


def test_relative_ca_path_is_made_absolute(options, pki, monkeypatch):
    monkeypatch.chdir(os.path.dirname(pki.ca))
    document = grpc_bootstrap(dataclasses.replace(options, tls_ca=os.path.basename(pki.ca)))
    assert document["xds_servers"][0]["channel_creds"][0]["config"]["ca_certificate_file"] == pki.ca


@pytest.mark.parametrize("delta", [False, True])
@pytest.mark.parametrize("tls", [False, True])
def test_envoy_bootstrap_is_a_valid_bootstrap_message(options, pki, delta, tls):
    """Every field name and enum value is Envoy's (a typo raises here); Envoy's
    own check is the slow test_envoy.py."""
    document = envoy_bootstrap(dataclasses.replace(options, delta=delta, tls_ca=pki.ca if tls else None))
    json_format.ParseDict(document, Bootstrap())


def test_grpc_bootstrap_plaintext(options):
    assert grpc_bootstrap(options) == {
        "xds_servers": [
            {"server_uri": "xds.example.com:443", "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}
        ],
        "node": {
            "id": "tenants/acme/meshes/prod/nodes/web-1",
            "cluster": "prod",
            "locality": {"region": "eu-west-1", "zone": "eu-west-1a"},
            "metadata": {"cloud": "aws", "interlock_token": TOKEN},
        },
    }


def test_grpc_bootstrap_tls(options, pki):
    (server,) = grpc_bootstrap(dataclasses.replace(options, tls_ca=pki.ca))["xds_servers"]
    assert server["channel_creds"] == [{"type": "tls", "config": {"ca_certificate_file": pki.ca}}]


def test_grpc_has_no_delta(options):
    with pytest.raises(BootstrapError) as error:
        grpc_bootstrap(dataclasses.replace(options, delta=True))
    assert error.value.field == "delta"


def test_grpc_cannot_verify_another_name_than_the_host(options, pki):
    with pytest.raises(BootstrapError) as error:
        grpc_bootstrap(dataclasses.replace(options, tls_ca=pki.ca, server_name="other.example.com"))
    assert error.value.field == "server_name"


BAD_OPTIONS = [
    ("server", "xds.example.com", "not host:port"),
    ("server", "xds.example.com:0", "between 1 and 65535"),
    ("server", "xds.example.com:70000", "between 1 and 65535"),
    ("server", ":443", "neither a host name nor an IP address"),
    ("server", "bad_host!:443", "neither a host name nor an IP address"),
    ("server", "2001:db8::1:443", "in brackets"),
    ("server", "[xds.example.com]:443", "not an IPv6 address"),
    ("tenant", "Acme", "invalid name"),
    ("mesh", "", "invalid name"),
    ("node", "web_1", "invalid name"),
    ("node", "a" * 64, "invalid name"),
    ("node", "ip-10-0-0-7..internal", "invalid name"),
    ("token", "", "no node token"),
    ("token", "ilk_0123456789ab_secret", "not an Interlock node token"),
    ("token", "ilt_0123456789ab_with space", "not an Interlock node token"),
    ("token", "ilt_short_secret", "not an Interlock node token"),
    ("region", "eu west", "at most 63"),
    ("zone", "z" * 64, "at most 63"),
    ("cloud", "aws\n", "at most 63"),
    ("admin_port", 65536, "between 0 and 65535"),
    ("admin_port", -1, "between 0 and 65535"),
    ("tls_ca", "/nonexistent/ca.pem", "no such file"),
    ("server_name", "xds.internal", "only means something with TLS"),
]


@pytest.mark.parametrize("field, value, message", BAD_OPTIONS)
def test_bad_options_are_refused_with_the_field(options, field, value, message):
    with pytest.raises(BootstrapError) as error:
        envoy_bootstrap(dataclasses.replace(options, **{field: value}))
    assert error.value.field == field
    assert message in error.value.message


def test_a_file_that_is_not_a_ca_bundle_is_refused(options, tmp_path):
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("hello")
    with pytest.raises(BootstrapError, match="no PEM certificate") as error:
        grpc_bootstrap(dataclasses.replace(options, tls_ca=str(not_pem)))
    assert error.value.field == "tls_ca"


def test_a_directory_as_ca_is_refused(options, tmp_path):
    with pytest.raises(BootstrapError, match="cannot be read") as error:
        envoy_bootstrap(dataclasses.replace(options, tls_ca=str(tmp_path)))
    assert error.value.field == "tls_ca"


def test_the_token_is_never_echoed_in_an_error(options):
    wrong = "ilt_nothexnothex_verysecretvalue"
    with pytest.raises(BootstrapError) as error:
        envoy_bootstrap(dataclasses.replace(options, token=wrong))
    assert "verysecret" not in str(error.value)


NAMES = ["a", "web-1", "a" * 63, "a" * 64, "A", "1a", "a-", "-a", "a_b", "a.b", "", "é", "a\n", "ab-c9"]


@pytest.mark.parametrize("name", NAMES)
def test_names_follow_the_api_rule(options, name):
    """The client's copy of service.mesh.validation.resource_name agrees with it."""
    try:
        validation.resource_name(name)
        api_accepts = True
    except ValidationError:
        api_accepts = False
    try:
        envoy_bootstrap(dataclasses.replace(options, mesh=name))
        client_accepts = True
    except BootstrapError:
        client_accepts = False
    assert client_accepts == api_accepts


def test_tokens_the_service_issues_are_accepted(options):
    assert NODE_TOKEN_KIND == SERVICE_NODE_TOKEN_KIND
    for _ in range(50):
        issued = secrets.issue(SERVICE_NODE_TOKEN_KIND).plaintext
        assert grpc_bootstrap(dataclasses.replace(options, token=issued))["node"]["metadata"]["interlock_token"] == issued
