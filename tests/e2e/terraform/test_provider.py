"""Acceptance tests: the provider, driven by the real terraform binary, against
the live API. Checks are grouped into a few apply cycles, since every
terraform command starts the provider anew."""
import json

import pytest

from tests.e2e.terraform.harness import CHANGES, COLLECTIONS, EXAMPLE, NO_CHANGES

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def weights(route: dict) -> dict[str, int]:
    return {d["service_name"]: d["weight"] for d in route["rules"][1]["action"]["destinations"]}


def import_blocks(resources: dict[str, dict], skip: str) -> str:
    return "".join(f'import {{\n  to = {address}\n  id = "{values["name"]}"\n}}\n'
                   for address, values in resources.items() if address != skip)


def without_secrets(resources: dict[str, dict]) -> dict[str, dict]:
    """A node token's secret is in the create response only; an import cannot know it."""
    return {address: {k: v for k, v in values.items() if k != "token"} for address, values in resources.items()}


def test_example_mesh_applies_updates_imports_and_destroys(workspace, api):
    ws = workspace(EXAMPLE)
    ws.init()
    ws.apply()
    assert ws.plan().returncode == NO_CHANGES

    applied = ws.resources()
    assert {address.split(".")[0] for address in applied} == set(COLLECTIONS)  # every resource type
    route = api.get("/api/v1/http-routes/storefront").json()
    assert weights(route) == {"storefront": 90, "storefront-canary": 10}
    group = api.get("/api/v1/endpoint-groups/storefront-europe-west1").json()
    assert group["locality"] == {"cloud": "gcp", "region": "europe-west1", "zone": "europe-west1-b"}
    # Each endpoint shows its verdict under the health check of the services using its group (never probed here).
    assert group["endpoints"] == [{"address": "10.20.0.11", "port": 8080, "weight": 1, "metadata": {"pool": "blue"},
                                   "health": [{"health_check": "storefront-http", "health": "UNKNOWN",
                                               "changed_at": None}]}]
    bootstrap = json.loads(ws.run("output", "-raw", "envoy_bootstrap").stdout)
    assert bootstrap["node"]["id"] == f"tenants/{api.tenant.name}/meshes/shop/nodes/storefront-1"

    # An in-place update: a new canary weight changes the route, and nothing is replaced.
    planned = ws.plan("-var", "canary_weight=25")
    assert planned.returncode == CHANGES
    assert "interlock_http_route.storefront will be updated in-place" in planned.stdout
    assert "0 to add, 1 to change, 0 to destroy" in planned.stdout
    ws.apply("-var", "canary_weight=25")
    assert weights(api.get("/api/v1/http-routes/storefront").json()) == {"storefront": 75, "storefront-canary": 25}
    assert ws.plan("-var", "canary_weight=25").returncode == NO_CHANGES
    updated = ws.resources()

    # Import every resource by name into a fresh workspace: one with the CLI,
    # the rest with import blocks; the state equals what apply produced. (An
    # imported node token has no secret, so no bootstrap can be made from it.)
    imported = workspace(EXAMPLE, leave_out=("bootstrap.tf",))
    imported.init()
    imported.run("import", "-input=false", "-no-color", "-var", "canary_weight=25", "interlock_mesh.shop", "shop")
    imported.write("imports.tf", import_blocks(updated, skip="interlock_mesh.shop"))
    done = imported.apply("-var", "canary_weight=25")
    assert f"{len(updated) - 1} imported, 0 added, 0 changed, 0 destroyed" in done.stdout
    assert imported.plan("-var", "canary_weight=25").returncode == NO_CHANGES
    assert without_secrets(imported.resources()) == without_secrets(updated)

    ws.destroy("-var", "canary_weight=25")
    for address, values in applied.items():
        collection = COLLECTIONS[address.split(".")[0]]
        assert api.get(f"/api/v1/{collection}/{values['name']}").status_code == 404, address


EDGE = """
terraform {
  required_providers {
    interlock = { source = "interlock/interlock" }
  }
}
variable "token_name" { default = "edge-a" }
variable "description" { default = "" }

resource "interlock_mesh" "edge" {
  name = "edge"
}
resource "interlock_health_check" "edge" {
  name             = "edge"
  description      = var.description
  tcp_health_check = { port = 443 }
}
resource "interlock_node_token" "edge" {
  name = var.token_name
  mesh = interlock_mesh.edge.name
}
resource "interlock_endpoint_group" "edge" {
  name     = "edge"
  locality = { region = "eu-north-1" }
}
"""


def test_replacement_drift_and_concurrent_edits(workspace, api):
    ws = workspace()
    ws.write("main.tf", EDGE)
    ws.init()
    ws.apply()
    first_token = ws.resources()["interlock_node_token.edge"]["token"]
    assert first_token.startswith("ilt_")

    # A new name replaces the token: the old one is revoked, a new one issued.
    planned = ws.plan("-var", "token_name=edge-b")
    assert "interlock_node_token.edge must be replaced" in planned.stdout
    assert "# forces replacement" in planned.stdout
    ws.apply("-var", "token_name=edge-b")
    assert api.get("/api/v1/node-tokens/edge-a").status_code == 404
    assert api.get("/api/v1/node-tokens/edge-b").json()["mesh"] == "edge"
    assert ws.resources()["interlock_node_token.edge"]["token"] not in (None, first_token)

    # Deleted outside Terraform: the next plan creates it again.
    assert api.delete("/api/v1/health-checks/edge").status_code == 204
    planned = ws.plan("-var", "token_name=edge-b")
    assert "interlock_health_check.edge will be created" in planned.stdout
    ws.apply("-var", "token_name=edge-b")
    assert api.get("/api/v1/health-checks/edge").json()["tcp_health_check"] == {"port": 443}

    # Endpoints left out of the configuration are the workloads' own: one attaching is no drift.
    attached = {"endpoints": [{"address": "10.0.0.9", "port": 8080}]}
    assert api.post("/api/v1/endpoint-groups/edge/attach", attached, format="json").status_code == 200
    assert ws.plan("-var", "token_name=edge-b").returncode == NO_CHANGES

    # Edited elsewhere between plan and apply: reported, not overwritten.
    ws.run("plan", "-input=false", "-no-color", "-out=edit.tfplan", "-var", "token_name=edge-b",
           "-var", "description=ours")
    assert api.patch("/api/v1/health-checks/edge", {"description": "theirs"}, format="json").status_code == 200
    refused = ws.run("apply", "-input=false", "-no-color", "edit.tfplan", check=False)
    assert refused.returncode == 1
    assert "health-checks/edge changed outside Terraform" in refused.stderr
    assert api.get("/api/v1/health-checks/edge").json()["description"] == "theirs"

    ws.destroy("-var", "token_name=edge-b")
    for path in ("meshes/edge", "health-checks/edge", "node-tokens/edge-b", "endpoint-groups/edge"):
        assert api.get(f"/api/v1/{path}").status_code == 404, path


BAD_CHOICE = """
terraform {
  required_providers {
    interlock = { source = "interlock/interlock" }
  }
}
resource "interlock_mesh" "m" {
  name = "bad"
}
resource "interlock_backend_service" "b" {
  name     = "mail"
  mesh     = interlock_mesh.m.name
  protocol = "SMTP"
}
"""

BAD_VALUES = """
terraform {
  required_providers {
    interlock = { source = "interlock/interlock" }
  }
}
resource "interlock_mesh" "m" {
  name = "bad"
}
resource "interlock_health_check" "h" {
  name               = "slow"
  check_interval_sec = 5
  timeout_sec        = 10
  tcp_health_check   = { port = 443 }
}
resource "interlock_http_route" "r" {
  name      = "broken"
  meshes    = [interlock_mesh.m.name]
  hostnames = ["broken.example.com"]
  rules = [{
    matches = [{ regex_match = "(" }]
    action  = { destinations = [{ service_name = "nowhere" }] }
  }]
}
"""


def test_bad_attributes_are_diagnostics_naming_them(workspace, api):
    # What the schema knows (choices) is refused at plan time: nothing at all is created.
    ws = workspace()
    ws.write("main.tf", BAD_CHOICE)
    ws.init()
    refused = ws.apply(check=False)
    assert refused.returncode == 1
    assert "Error: Invalid protocol" in refused.stderr
    assert "'SMTP' is not one of HTTP, HTTP2, GRPC, TCP" in refused.stderr
    assert 'protocol = "SMTP"' in refused.stderr  # terraform points at the attribute in the file
    assert api.get("/api/v1/meshes").json()["count"] == 0

    # What only the API can judge is refused by it, per attribute; the bad resources are not created.
    ws.write("main.tf", BAD_VALUES)
    refused = ws.apply(check=False)
    assert refused.returncode == 1
    assert "Error: Invalid timeout_sec" in refused.stderr
    assert "timeout cannot be longer than the interval" in refused.stderr
    assert "Error: Invalid rules[0].matches[0].regex_match" in refused.stderr
    assert api.get("/api/v1/health-checks/slow").status_code == 404
    assert api.get("/api/v1/http-routes/broken").status_code == 404
    assert set(ws.resources()) == {"interlock_mesh.m"}

    # An import ID that names nothing says so.
    missing = ws.run("import", "-input=false", "-no-color", "interlock_health_check.h", "nowhere", check=False)
    assert missing.returncode == 1
    assert "there is no health-checks named 'nowhere'" in missing.stderr
    ws.destroy()
