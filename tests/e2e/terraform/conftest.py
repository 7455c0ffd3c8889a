"""Real terraform against a live API on loopback.

The API is pytest-django's `live_server`: the project's WSGI app in a threaded
server on 127.0.0.1, on this test run's database, so the tenant and key the
fixtures make through service code are the ones terraform's provider uses, and
pytest-django flushes everything afterwards. Terraform gets its own CLI
configuration (a filesystem mirror of the provider, built here), HOME and
plugin cache in temporary directories, and nothing of the user's environment.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from terraform.provider import mirror
from tests.e2e.terraform.harness import Workspace


@pytest.fixture(scope="session")
def terraform_home(tmp_path_factory) -> Path:
    """HOME, CLI configuration, mirror and plugin cache shared by the session's workspaces."""
    home = tmp_path_factory.mktemp("terraform-home")
    mirror.build(home / "mirror")
    (home / "plugin-cache").mkdir()
    (home / "terraformrc").write_text(mirror.cli_config(home / "mirror"))
    return home


@pytest.fixture
def api_key(api) -> str:
    return api.key


@pytest.fixture
def workspace(tmp_path, terraform_home, live_server, api_key):
    """`workspace(source=None, leave_out=())`: a new working directory, with the .tf files of `source`."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(terraform_home),
        "TF_CLI_CONFIG_FILE": str(terraform_home / "terraformrc"),
        "TF_PLUGIN_CACHE_DIR": str(terraform_home / "plugin-cache"),
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",
        "INTERLOCK_API_URL": live_server.url,
        "INTERLOCK_API_KEY": api_key,
    }
    count = iter(range(100))

    def make(source: Path | None = None, leave_out: tuple[str, ...] = ()) -> Workspace:
        path = tmp_path / f"workspace-{next(count)}"
        path.mkdir()
        for tf_file in sorted(source.glob("*.tf")) if source else []:
            if tf_file.name not in leave_out:
                shutil.copy(tf_file, path)
        return Workspace(path, env)

    return make
