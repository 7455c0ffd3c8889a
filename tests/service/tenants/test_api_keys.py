"""API keys: shown once, stored as a digest, bounded by the creator's role,
revocable, rate-limited per key, and the only way into the API."""
import hashlib

import pytest

from service.tenants.models import APIKey, Role, Scope
from tests.conftest import TenantClient

KEYS = "/api/v1/api-keys"


def create_key(client, **body):
    response = client.post(KEYS, {"name": "ci", **body}, format="json")
    return response


def field_codes(response):
    return {(error["field"], error["code"]) for error in response.json()["errors"]}


# --- shown once, stored hashed ------------------------------------------------


def test_create_returns_the_plaintext_once(api):
    response = create_key(api, role="editor")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["name"] == "ci"
    assert body["role"] == "editor"
    assert body["scope"] == "read-write"
    assert body["last_used_at"] is None
    plaintext = body["key"]
    assert plaintext.startswith("ilk_")
    assert len(plaintext) > 40

    read = api.get(f"{KEYS}/ci")
    assert read.status_code == 200
    assert "key" not in read.json()
    assert plaintext not in read.content.decode()

    listed = api.get(KEYS)
    assert listed.status_code == 200
    names = [item["name"] for item in listed.json()["results"]]
    assert sorted(names) == ["ci", "owner", "owner-read-write"]  # create_tenant's key and the fixture's
    assert all("key" not in item for item in listed.json()["results"])
    assert plaintext not in listed.content.decode()


def test_only_a_sha256_digest_is_stored(api):
    plaintext = create_key(api).json()["key"]
    secret = plaintext.split("_", 2)[2]
    row = APIKey.objects.filter(tenant=api.tenant, name="ci").values().get()
    assert row["digest"] == hashlib.sha256(plaintext.encode()).hexdigest()
    for column, value in row.items():
        assert plaintext not in str(value), column
        assert secret not in str(value), column


def test_the_new_key_works_and_carries_its_role(api):
    plaintext = create_key(api, role="viewer").json()["key"]
    viewer = TenantClient(api.tenant, plaintext)
    tenant = viewer.get("/api/v1/tenant")
    assert tenant.status_code == 200
    assert tenant.json()["name"] == "acme"
    assert viewer.get("/api/v1/meshes").status_code == 200
    refused = viewer.post("/api/v1/meshes", {"name": "m1"}, format="json")
    assert refused.status_code == 403
    assert refused.json()["code"] == "permission_denied"


def test_last_used_at_is_set_after_use(api):
    plaintext = create_key(api).json()["key"]
    assert APIKey.objects.get(tenant=api.tenant, name="ci").last_used_at is None
    assert TenantClient(api.tenant, plaintext).get("/api/v1/meshes").status_code == 200
    assert APIKey.objects.get(tenant=api.tenant, name="ci").last_used_at is not None
    assert api.get(f"{KEYS}/ci").json()["last_used_at"] is not None


# --- who may mint what ----------------------------------------------------------


def test_an_admin_key_cannot_create_an_owner_key(tenant, client_for):
    admin = client_for(tenant, role=Role.ADMIN, name="admin")
    response = create_key(admin, role="owner")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert ("role", "role_too_high") in field_codes(response)
    assert not APIKey.objects.filter(tenant=tenant, name="ci").exists()
    # Up to its own role is fine.
    assert create_key(admin, role="admin").status_code == 201


def test_an_editor_key_cannot_list_or_create_keys(tenant, client_for):
    editor = client_for(tenant, role=Role.EDITOR, name="editor")
    listed = editor.get(KEYS)
    assert listed.status_code == 403
    assert listed.json()["code"] == "permission_denied"
    assert editor.get(f"{KEYS}/editor").status_code == 403
    created = create_key(editor, role="viewer")
    assert created.status_code == 403
    assert created.json()["code"] == "permission_denied"
    assert not APIKey.objects.filter(tenant=tenant, name="ci").exists()


def test_a_read_scoped_key_cannot_write(tenant, client_for):
    reader = client_for(tenant, role=Role.OWNER, scope=Scope.READ, name="reader")
    assert reader.get(KEYS).status_code == 200
    created = create_key(reader, role="viewer")
    assert created.status_code == 403
    assert created.json()["code"] == "permission_denied"
    assert "read-only" in created.json()["message"]
    assert not APIKey.objects.filter(tenant=tenant, name="ci").exists()
    assert reader.delete(f"{KEYS}/reader").status_code == 403
    assert APIKey.objects.filter(tenant=tenant, name="reader").exists()


def test_duplicate_name_is_refused(api):
    assert create_key(api).status_code == 201
    again = create_key(api)
    assert again.status_code == 400
    assert ("name", "duplicate") in field_codes(again)


def test_credential_endpoints_have_no_update(api):
    assert create_key(api).status_code == 201
    assert api.patch(f"{KEYS}/ci", {"role": "owner"}, format="json").status_code == 405
    assert api.put(f"{KEYS}/ci", {"name": "ci", "role": "owner"}, format="json").status_code == 405


# --- revoking -----------------------------------------------------------------


def test_delete_revokes_the_key(api):
    plaintext = create_key(api).json()["key"]
    holder = TenantClient(api.tenant, plaintext)
    assert holder.get("/api/v1/meshes").status_code == 200
    assert api.delete(f"{KEYS}/ci").status_code == 204
    assert api.get(f"{KEYS}/ci").status_code == 404
    assert not APIKey.objects.filter(tenant=api.tenant, name="ci").exists()

    refused = holder.get("/api/v1/meshes")
    assert refused.status_code == 401
    assert refused.json()["code"] == "authentication_failed"
    assert refused["WWW-Authenticate"] == "Bearer"
    # The owner key is untouched.
    assert api.get("/api/v1/meshes").status_code == 200


def test_another_tenants_key_is_invisible(api, other_api):
    assert create_key(other_api).status_code == 201
    assert api.get(f"{KEYS}/ci").status_code == 404
    assert api.delete(f"{KEYS}/ci").status_code == 404
    assert "ci" not in [item["name"] for item in api.get(KEYS).json()["results"]]
    assert other_api.get(f"{KEYS}/ci").status_code == 200


# --- the Authorization header ---------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "Token {key}",
        "Bearer",
        "Bearer {key} extra",
        "Basic dXNlcjpwYXNz",
        "Bearer garbage",
        "Bearer ilk_000000000000_not-a-real-secret",
        "Bearer ilt_{prefix}_{secret}",  # right secret, wrong kind
        "Bearer {key}x",  # right prefix, wrong secret
    ],
)
def test_malformed_or_unknown_credentials_are_401(api, header):
    _, prefix, secret = api.key.split("_", 2)
    client = TenantClient(api.tenant, api.key)
    client.credentials(HTTP_AUTHORIZATION=header.format(key=api.key, prefix=prefix, secret=secret))
    response = client.get("/api/v1/meshes")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"
    assert response.json()["message"]
    assert response["WWW-Authenticate"] == "Bearer"


def test_no_credentials_is_401_not_authenticated(db):
    from rest_framework.test import APIClient

    response = APIClient().get("/api/v1/meshes")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_the_bearer_scheme_is_case_insensitive(api):
    """RFC 7235 §2.1 (and DRF's own TokenAuthentication): the auth-scheme is
    case-insensitive, so `bearer <key>` is the same credential."""
    client = TenantClient(api.tenant, api.key)
    client.credentials(HTTP_AUTHORIZATION=f"bearer {api.key}")
    assert client.get("/api/v1/meshes").status_code == 200


# --- rate limits ----------------------------------------------------------------


@pytest.mark.parametrize("rate", ["fast", "0/min", "-1/min", "3/fortnight", "3", "/min", "3/", "1.5/s", "²/min"])
def test_invalid_rate_limit_is_400(api, rate):
    response = create_key(api, rate_limit=rate)
    assert response.status_code == 400, response.json()
    assert ("rate_limit", "invalid_rate") in field_codes(response)
    assert not APIKey.objects.filter(tenant=api.tenant, name="ci").exists()


@pytest.mark.parametrize("rate", ["10/s", "10/sec", "10/m", "600/min", "5/h", "5/hour", "1/d", "1/day"])
def test_valid_rate_limits_are_accepted(api, rate):
    response = create_key(api, rate_limit=rate)
    assert response.status_code == 201, response.json()
    assert response.json()["rate_limit"] == rate
    holder = TenantClient(api.tenant, response.json()["key"])
    assert holder.get("/api/v1/meshes").status_code == 200


def test_a_keys_rate_limit_is_enforced(api):
    created = create_key(api, rate_limit="3/min")
    assert created.status_code == 201, created.json()
    limited = TenantClient(api.tenant, created.json()["key"])
    for _ in range(3):
        assert limited.get("/api/v1/meshes").status_code == 200
    refused = limited.get("/api/v1/meshes")
    assert refused.status_code == 429
    assert refused.json()["code"] == "throttled"
    assert int(refused["Retry-After"]) > 0
    # Writes count against the same limit and are refused too, with nothing written.
    write = limited.post("/api/v1/meshes", {"name": "m1"}, format="json")
    assert write.status_code == 429
    assert api.get("/api/v1/meshes/m1").status_code == 404
    # The limit is per key: the owner key is unaffected.
    for _ in range(5):
        assert api.get("/api/v1/meshes").status_code == 200
