"""The CDKTF app synthesizes with plain Python, and its output applies cleanly
with the same provider against the live API."""
import json
import os
import subprocess
import sys

import pytest

from tests.e2e.terraform.harness import NO_CHANGES, REPO

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
# jsii prints a banner on node 20 (the machine's); it changes nothing here.
QUIET_JSII = {"JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}


def synthesize(outdir) -> dict:
    subprocess.run([sys.executable, "terraform/cdktf/main.py"], cwd=REPO, check=True, timeout=120,
                   env={**os.environ, **QUIET_JSII, "CDKTF_OUTDIR": str(outdir), "PYTHONPATH": str(REPO)})
    return json.loads((outdir / "stacks" / "shop" / "cdk.tf.json").read_text())


def test_app_synthesizes_and_its_output_applies_with_the_provider(workspace, api, tmp_path):
    synthesized = synthesize(tmp_path / "cdktf.out")
    assert synthesized["terraform"]["required_providers"]["interlock"]["source"] == \
        "registry.terraform.io/interlock/interlock"

    ws = workspace()
    ws.write("cdk.tf.json", json.dumps(synthesized))
    ws.init()
    ws.apply()
    assert ws.plan().returncode == NO_CHANGES
    route = api.get("/api/v1/http-routes/storefront").json()
    assert [d["weight"] for d in route["rules"][1]["action"]["destinations"]] == [90, 10]
    assert api.get("/api/v1/tcp-routes/orders-db").status_code == 200
    assert api.get("/api/v1/node-tokens/storefront").json()["mesh"] == "shop"
    bootstrap = json.loads(ws.run("output", "-raw", "envoy_bootstrap").stdout)
    assert bootstrap["node"]["id"] == f"tenants/{api.tenant.name}/meshes/shop/nodes/storefront-1"

    ws.destroy()
    assert api.get("/api/v1/meshes").json()["count"] == 0

