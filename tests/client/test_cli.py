"""The `interlock-bootstrap` command: output, token sources, and every input
error as one line and exit status 2, with nothing written."""
import json
import os
import stat
import subprocess
import sys

import pytest

from client.cli import TOKEN_ENV, main
from tests.client.conftest import TOKEN

BASE = ["--server", "127.0.0.1:18000", "--tenant", "acme", "--mesh", "prod", "--node", "web-1"]


@pytest.fixture(autouse=True)
def _no_token_in_environment(monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_envoy_bootstrap_on_stdout(capsys):
    code, out, err = run(capsys, "envoy", *BASE, "--token", TOKEN, "--delta", "--admin-port", "9901")
    assert (code, err) == (0, "")
    document = json.loads(out)
    assert document["node"]["id"] == "tenants/acme/meshes/prod/nodes/web-1"
    assert document["dynamic_resources"]["ads_config"]["api_type"] == "DELTA_GRPC"
    assert document["admin"]["address"]["socket_address"]["port_value"] == 9901


def test_grpc_bootstrap_to_a_private_file(capsys, tmp_path, pki):
    output = tmp_path / "bootstrap.json"
    output.write_text("old")
    output.chmod(0o644)
    code, out, err = run(capsys, "grpc", *BASE, "--token", TOKEN, "--tls-ca", pki.ca, "-o", str(output))
    assert (code, out, err) == (0, "", "")
    assert stat.S_IMODE(output.stat().st_mode) == 0o600  # it holds the token
    document = json.loads(output.read_text())
    assert document["node"]["metadata"]["interlock_token"] == TOKEN
    assert document["xds_servers"][0]["channel_creds"][0]["type"] == "tls"


def test_token_from_a_file(capsys, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    code, out, _ = run(capsys, "grpc", *BASE, "--token-file", str(token_file))
    assert code == 0
    assert json.loads(out)["node"]["metadata"]["interlock_token"] == TOKEN


def test_token_from_the_environment(capsys, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    code, out, _ = run(capsys, "envoy", *BASE)
    assert code == 0
    assert f"Bearer {TOKEN}" in out


def test_a_token_flag_wins_over_the_environment(capsys, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "ilt_000000000000_from-env")
    code, out, _ = run(capsys, "grpc", *BASE, "--token", TOKEN)
    assert code == 0
    assert json.loads(out)["node"]["metadata"]["interlock_token"] == TOKEN


BAD_INPUT = [
    (["envoy", *BASE], "--token: no node token: give --token-file FILE, --token or set $INTERLOCK_NODE_TOKEN."),
    (["envoy", *BASE, "--token", "hunter2"], "--token: not an Interlock node token"),
    (["envoy", *BASE, "--token-file", "/nonexistent/token"], "--token-file: /nonexistent/token: no such file."),
    (["envoy", *BASE[:-1], "web_1", "--token", TOKEN], "--node: invalid name 'web_1'"),
    (["grpc", "--server", "xds:http", *BASE[2:], "--token", TOKEN], "--server: 'xds:http' is not host:port"),
    (["envoy", *BASE, "--token", TOKEN, "--tls-ca", "/nonexistent/ca.pem"], "--tls-ca: /nonexistent/ca.pem: no such file."),
    (["envoy", *BASE, "--token", TOKEN, "--admin-port", "99999"], "--admin-port: port 99999 is not between 0 and 65535."),
    (["envoy", *BASE, "--token", TOKEN, "--region", "eu west"], "--region: 'eu west'"),
    (["envoy", *BASE, "--token", TOKEN, "--server-name", "x.example"], "--server-name: only means something with TLS"),
    (["envoy", *BASE, "--token", TOKEN, "--", "--log-level", "debug"], "--run: arguments after -- are for Envoy and need --run."),
]


@pytest.mark.parametrize("argv, message", BAD_INPUT)
def test_input_errors_are_one_line_exit_2_and_write_nothing(capsys, tmp_path, argv, message):
    output = tmp_path / "bootstrap.json"
    code, out, err = run(capsys, argv[0], "-o", str(output), *argv[1:])
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(f"interlock-bootstrap {argv[0]}: error: {message}")
    assert not output.exists()


def test_a_token_file_that_is_a_directory(capsys, tmp_path):
    code, _, err = run(capsys, "grpc", *BASE, "--token-file", str(tmp_path))
    assert code == 2
    assert err.startswith(f"interlock-bootstrap grpc: error: --token-file: {tmp_path}: cannot be read")


def test_an_unwritable_output_is_an_input_error(capsys, tmp_path):
    code, _, err = run(capsys, "grpc", *BASE, "--token", TOKEN, "-o", str(tmp_path / "missing" / "b.json"))
    assert code == 2
    assert "error: -o: " in err and "cannot be written" in err


def test_bad_token_is_not_echoed(capsys):
    code, _, err = run(capsys, "envoy", *BASE, "--token", "ilt_0123456789ab_sec ret")
    assert code == 2 and "sec ret" not in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["envoy", "--tenant", "acme"], "the following arguments are required: --server, --mesh, --node"),
        (["grpc", *BASE, "--token", TOKEN, "--delta"], "unrecognized arguments: --delta"),
        (["grpc", *BASE, "--token", TOKEN, "--token-file", "f"], "not allowed with argument"),
        (["envoy", *BASE, "--admin-port", "http"], "invalid int value: 'http'"),
    ],
)
def test_usage_errors_from_the_installed_command(argv, message, tmp_path):
    """The console script itself: argparse's usage errors, exit 2, no traceback."""
    script = os.path.join(os.path.dirname(sys.executable), "interlock-bootstrap")
    result = subprocess.run([script, *argv], capture_output=True, text=True, cwd=tmp_path, timeout=30)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == "" and list(tmp_path.iterdir()) == []


def test_input_error_from_the_installed_command_has_no_traceback(tmp_path):
    script = os.path.join(os.path.dirname(sys.executable), "interlock-bootstrap")
    result = subprocess.run(
        [script, "envoy", *BASE, "--tls-ca", "missing.pem", "-o", "b.json"],
        capture_output=True, text=True, cwd=tmp_path, timeout=30, env={**os.environ, TOKEN_ENV: TOKEN},
    )
    assert result.returncode == 2
    assert result.stderr == "interlock-bootstrap envoy: error: --tls-ca: missing.pem: no such file.\n"
    assert list(tmp_path.iterdir()) == []
