"""The `interlock` console script, run as an operator runs it: a subprocess
against a fresh Postgres database."""
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import requests

pytestmark = pytest.mark.slow

BASE_DATABASE_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/interlock")


def interlock_script() -> str:
    script = Path(sys.executable).parent / "interlock"
    if script.exists():
        return str(script)
    found = shutil.which("interlock")
    assert found, "the `interlock` console script is not installed"
    return found


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def database_url():
    """A fresh, empty Postgres database for this module, dropped afterwards."""
    if not BASE_DATABASE_URL.startswith(("postgres://", "postgresql://")):
        pytest.fail("these tests need DATABASE_URL to point at Postgres")
    name = f"interlock_cli_{secrets.token_hex(4)}"
    maintenance = with_database(BASE_DATABASE_URL, "postgres").replace("postgres://", "postgresql://", 1)
    with psycopg.connect(maintenance, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(BASE_DATABASE_URL, name)
    finally:
        with psycopg.connect(maintenance, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def env(database_url):
    environment = {k: v for k, v in os.environ.items() if k not in ("INTERLOCK_STATE_DIR",)}
    environment["DATABASE_URL"] = database_url
    environment["DJANGO_SETTINGS_MODULE"] = "service.settings"
    return environment


def run(env, *args, timeout=120):
    return subprocess.run([interlock_script(), *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def migrated(env):
    result = run(env, "migrate")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"migrated": True}
    return env


def wait_for(url, process, seconds=15.0, **kwargs):
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out, err = process.communicate(timeout=5)
            pytest.fail(f"the server exited with {process.returncode}:\n{out}\n{err}")
        try:
            return requests.get(url, timeout=2, **kwargs)
        except requests.ConnectionError as exc:
            last = exc
            time.sleep(0.2)
    pytest.fail(f"{url} did not answer within {seconds} s: {last}")


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def test_migrate_is_idempotent(migrated):
    again = run(migrated, "migrate")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {"migrated": True}


def test_tenant_create_prints_a_key_that_works_against_the_api(migrated):
    result = run(migrated, "tenant", "create", "acme")
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["tenant"] == "acme"
    assert created["role"] == "owner"
    key = created["api_key"]
    assert key.startswith("ilk_")

    port = free_port()
    server = subprocess.Popen(
        [interlock_script(), "api", "--port", str(port), "--workers", "1", "--threads", "2"],
        env=migrated,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        assert wait_for(f"{base}/healthz", server).status_code == 200
        response = requests.get(f"{base}/api/v1/tenant", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert response.status_code == 200, response.text
        assert response.json()["name"] == "acme"
        assert response.json()["usage"]["resources"] == 0

        refused = requests.get(f"{base}/api/v1/tenant", headers={"Authorization": "Bearer ilk_nope"}, timeout=10)
        assert refused.status_code == 401
        assert refused.json()["code"] == "authentication_failed"
    finally:
        stop(server)
    assert server.returncode is not None


def test_tenant_create_with_a_bad_name_exits_2(migrated):
    result = run(migrated, "tenant", "create", "Bad Name")
    assert result.returncode == 2
    assert result.stdout == ""
    error = json.loads(result.stderr.strip().splitlines()[-1])
    assert error["code"] == "invalid_name"
    assert error["field"] == "name"
    assert error["message"]


def test_tenant_create_twice_exits_2_duplicate(migrated):
    first = run(migrated, "tenant", "create", "globex")
    assert first.returncode == 0, first.stderr
    again = run(migrated, "tenant", "create", "globex")
    assert again.returncode == 2
    assert again.stdout == ""
    error = json.loads(again.stderr.strip().splitlines()[-1])
    assert error["code"] == "duplicate"
    assert "globex" in error["message"]


def test_unknown_command_is_a_usage_error(env):
    result = run(env, "frobnicate")
    assert result.returncode == 2
    assert "usage" in result.stderr.lower()


def test_dev_serves_healthz_on_its_own_state_dir(tmp_path):
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "NOTICE_BUS")}
    environment["INTERLOCK_STATE_DIR"] = str(tmp_path / "state")
    server = subprocess.Popen(
        [interlock_script(), "dev", "--port", str(port), "--xds-port", str(free_port())],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        response = wait_for(f"{base}/healthz", server, seconds=30)
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
        ready = requests.get(f"{base}/readyz", timeout=5)
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": "ok", "notices": "ok"}
    finally:
        stop(server)
    assert (tmp_path / "state" / "interlock-dev.sqlite3").exists()


def quotas(env, *args):
    return run(env, "tenant", "quotas", *args)


def test_tenant_quotas_prints_the_quotas_and_usage(migrated):
    assert run(migrated, "tenant", "create", "initech").returncode == 0
    result = quotas(migrated, "initech")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["name"] == "initech"
    assert (shown["max_resources"], shown["max_endpoints"], shown["max_proxies"]) == (2000, 20000, 5000)
    assert shown["usage"] == {"resources": 0, "endpoints": 0, "proxies": 0}


def test_tenant_quotas_sets_them(migrated):
    assert run(migrated, "tenant", "create", "hooli").returncode == 0
    result = quotas(migrated, "hooli", "--max-proxies", "50", "--max-resources", "0", "--max-endpoints", "100")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert (shown["max_resources"], shown["max_endpoints"], shown["max_proxies"]) == (0, 100, 50)
    again = json.loads(quotas(migrated, "hooli", "--max-proxies", "60").stdout)
    assert (again["max_resources"], again["max_endpoints"], again["max_proxies"]) == (0, 100, 60)


@pytest.fixture(scope="module")
def umbrella(migrated):
    assert run(migrated, "tenant", "create", "umbrella").returncode == 0
    return "umbrella"


@pytest.mark.parametrize("flag, value", [("--max-proxies", "-1"), ("--max-endpoints", "lots"),
                                         ("--max-resources", str(2**31))])
def test_tenant_quotas_with_a_bad_value_exits_2_and_changes_nothing(migrated, umbrella, flag, value):
    before = quotas(migrated, "umbrella").stdout
    result = quotas(migrated, "umbrella", "--max-proxies", "7", flag, value)
    assert result.returncode == 2
    assert result.stdout == ""
    error = json.loads(result.stderr.strip().splitlines()[-1])
    assert error["code"] == "invalid"
    assert error["field"] == flag
    assert error["message"]
    assert quotas(migrated, "umbrella").stdout == before


def test_tenant_quotas_of_an_unknown_tenant_exits_2(migrated):
    for args in (["nobody"], ["nobody", "--max-proxies", "5"]):
        result = quotas(migrated, *args)
        assert result.returncode == 2
        error = json.loads(result.stderr.strip().splitlines()[-1])
        assert error["code"] == "not_found"
        assert error["field"] == "name"
        assert "nobody" in error["message"]
