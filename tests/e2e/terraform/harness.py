"""Running the real terraform binary in a working directory of its own."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from terraform.provider.provider import PREFIX, RESOURCES

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "terraform" / "examples" / "mesh"
NO_CHANGES, CHANGES = 0, 2  # `terraform plan -detailed-exitcode`
COLLECTIONS = {PREFIX + resource.name: resource.collection for resource in RESOURCES}
TIMEOUT_SEC = 300


class Workspace:
    """One Terraform working directory and the commands the tests run in it."""

    def __init__(self, path: Path, env: dict):
        self.path = path
        self.env = env

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(["terraform", *args], cwd=self.path, env=self.env, capture_output=True, text=True,
                              timeout=TIMEOUT_SEC)
        if check and done.returncode != 0:
            raise AssertionError(f"terraform {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def init(self):
        self.run("init", "-input=false", "-no-color")

    def apply(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("apply", "-auto-approve", "-input=false", "-no-color", *args, check=check)

    def plan(self, *args: str) -> subprocess.CompletedProcess:
        done = self.run("plan", "-detailed-exitcode", "-input=false", "-no-color", *args, check=False)
        if done.returncode not in (NO_CHANGES, CHANGES):
            raise AssertionError(f"terraform plan failed:\n{done.stdout}\n{done.stderr}")
        return done

    def destroy(self, *args: str):
        self.run("destroy", "-auto-approve", "-input=false", "-no-color", *args)

    def resources(self) -> dict[str, dict]:
        """Managed resources in the state: address -> attribute values."""
        shown = json.loads(self.run("show", "-json").stdout)
        found = shown.get("values", {}).get("root_module", {}).get("resources", [])
        return {r["address"]: r["values"] for r in found if r["mode"] == "managed"}

    def write(self, name: str, text: str):
        (self.path / name).write_text(text)
