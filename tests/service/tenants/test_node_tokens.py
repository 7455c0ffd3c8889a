"""Node tokens: what a proxy presents to prove it belongs to one tenant's mesh."""
import hashlib

import pytest

from service.mesh.models import Mesh
from service.tenants.auth import find_api_key
from service.tenants.models import NodeToken, Role, Scope
from service.tenants.services import find_node_token

TOKENS = "/api/v1/node-tokens"


@pytest.fixture
def mesh(api):
    response = api.post("/api/v1/meshes", {"name": "m1"}, format="json")
    assert response.status_code == 201, response.json()
    return Mesh.objects.get(tenant=api.tenant, name="m1")


@pytest.fixture
def token(api, mesh):
    """The plaintext of token 'tok1' bound to mesh m1."""
    response = api.post(TOKENS, {"name": "tok1", "mesh": "m1"}, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["token"]


def test_create_shows_the_token_once(api, mesh):
    response = api.post(TOKENS, {"name": "tok1", "mesh": "m1"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["name"] == "tok1"
    assert body["mesh"] == "m1"
    assert body["last_used_at"] is None
    plaintext = body["token"]
    kind, prefix, secret = plaintext.split("_", 2)
    assert kind == "ilt"
    assert len(prefix) == 12
    assert len(secret) >= 40

    read = api.get(f"{TOKENS}/tok1")
    assert read.status_code == 200
    assert read.json()["mesh"] == "m1"
    assert "token" not in read.json()
    listed = api.get(TOKENS)
    assert [item["name"] for item in listed.json()["results"]] == ["tok1"]
    assert plaintext not in read.content.decode() + listed.content.decode()

    row = NodeToken.objects.filter(name="tok1").values().get()
    assert row["digest"] == hashlib.sha256(plaintext.encode()).hexdigest()
    assert all(secret not in str(value) for value in row.values())


def test_find_node_token_returns_its_tenant_and_mesh(api, mesh, token):
    found = find_node_token(token)
    assert found is not None
    assert found.name == "tok1"
    assert found.tenant == api.tenant
    assert found.mesh == mesh
    assert found.mesh.name == "m1"
    assert NodeToken.objects.get(pk=found.pk).last_used_at is not None


def test_find_node_token_refuses_wrong_tokens(api, mesh, token):
    kind, prefix, secret = token.split("_", 2)
    wrong = [
        "",
        "garbage",
        f"{token}x",  # right prefix, wrong secret
        f"{kind}_{prefix}_{secret[:-1]}",
        f"ilk_{prefix}_{secret}",  # another kind of credential, same parts
        f"ilt_000000000000_{secret}",  # unknown prefix
        f"ilt_{prefix[:-1]}_{secret}",  # malformed prefix
        api.key,  # an API key is not a node token
    ]
    for candidate in wrong:
        assert find_node_token(candidate) is None, candidate
    # Nor is a node token an API key.
    assert find_api_key(token) is None
    assert find_node_token(token) is not None


def test_a_node_token_cannot_be_used_as_an_api_key(api, token):
    from tests.conftest import TenantClient

    response = TenantClient(api.tenant, token).get("/api/v1/meshes")
    assert response.status_code == 401


def test_editor_may_create_viewer_and_read_key_may_not(tenant, client_for, mesh):
    editor = client_for(tenant, role=Role.EDITOR, name="editor")
    assert editor.post(TOKENS, {"name": "by-editor", "mesh": "m1"}, format="json").status_code == 201
    viewer = client_for(tenant, role=Role.VIEWER, name="viewer")
    assert viewer.post(TOKENS, {"name": "by-viewer", "mesh": "m1"}, format="json").status_code == 403
    reader = client_for(tenant, role=Role.OWNER, scope=Scope.READ, name="reader")
    assert reader.post(TOKENS, {"name": "by-reader", "mesh": "m1"}, format="json").status_code == 403
    assert sorted(NodeToken.objects.values_list("name", flat=True)) == ["by-editor"]


def test_a_token_for_another_tenants_mesh_is_refused(api, other_api):
    assert other_api.post("/api/v1/meshes", {"name": "theirs"}, format="json").status_code == 201
    response = api.post(TOKENS, {"name": "sneaky", "mesh": "theirs"}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    errors = response.json()["errors"]
    assert [(error["field"], error["code"]) for error in errors] == [("mesh", "does_not_exist")]
    assert "theirs" in errors[0]["message"]
    assert not NodeToken.objects.filter(name="sneaky").exists()


def test_a_token_for_a_missing_mesh_or_bad_body_is_refused(api, mesh):
    missing = api.post(TOKENS, {"name": "t", "mesh": "nope"}, format="json")
    assert missing.status_code == 400
    assert missing.json()["errors"][0]["code"] == "does_not_exist"
    no_mesh = api.post(TOKENS, {"name": "t"}, format="json")
    assert no_mesh.status_code == 400
    assert no_mesh.json()["errors"][0]["field"] == "mesh"
    not_a_name = api.post(TOKENS, {"name": "t", "mesh": ["m1"]}, format="json")
    assert not_a_name.status_code == 400
    bad_name = api.post(TOKENS, {"name": "Bad Name", "mesh": "m1"}, format="json")
    assert bad_name.status_code == 400
    assert bad_name.json()["errors"][0]["field"] == "name"
    assert not NodeToken.objects.exists()


def test_duplicate_token_name_is_refused(api, token):
    again = api.post(TOKENS, {"name": "tok1", "mesh": "m1"}, format="json")
    assert again.status_code == 400
    assert ("name", "duplicate") in {(e["field"], e["code"]) for e in again.json()["errors"]}
    assert find_node_token(token) is not None


def test_deleting_a_mesh_a_token_refers_to_is_409(api, token):
    response = api.delete("/api/v1/meshes/m1")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "in_use"
    assert any(referrer.endswith("/tok1") for referrer in body["referrers"]), body
    assert "tok1" in body["message"]
    assert api.get("/api/v1/meshes/m1").status_code == 200
    assert find_node_token(token) is not None
    # Once the token is revoked the mesh can go.
    assert api.delete(f"{TOKENS}/tok1").status_code == 204
    assert api.delete("/api/v1/meshes/m1").status_code == 204


def test_delete_revokes_the_token(api, token):
    assert find_node_token(token) is not None
    assert api.delete(f"{TOKENS}/tok1").status_code == 204
    assert api.get(f"{TOKENS}/tok1").status_code == 404
    assert find_node_token(token) is None


def test_another_tenant_cannot_see_or_revoke_it(api, other_api, token):
    assert other_api.get(f"{TOKENS}/tok1").status_code == 404
    assert other_api.delete(f"{TOKENS}/tok1").status_code == 404
    assert other_api.get(TOKENS).json()["results"] == []
    assert find_node_token(token) is not None
    assert api.get(f"{TOKENS}/tok1").status_code == 200


def test_tokens_cannot_be_edited(api, token):
    assert api.patch(f"{TOKENS}/tok1", {"mesh": "m1"}, format="json").status_code == 405
    assert api.put(f"{TOKENS}/tok1", {"name": "tok1", "mesh": "m1"}, format="json").status_code == 405
