"""GET /tenant (quotas and usage) and the tenant's members."""
import pytest
from django.contrib.auth import get_user_model

from service.tenants.models import Membership, Role

MEMBERS = "/api/v1/members"


@pytest.fixture
def admin(tenant, client_for):
    return client_for(tenant, role=Role.ADMIN, name="admin")


def codes(response):
    return {(error["field"], error["code"]) for error in response.json()["errors"]}


# --- the tenant -----------------------------------------------------------------


def test_tenant_shows_name_quotas_and_usage(api):
    response = api.get("/api/v1/tenant")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "acme"
    assert body["created_at"]
    assert body["max_resources"] == 2000
    assert body["max_endpoints"] == 20000
    assert body["max_proxies"] == 5000
    assert body["usage"] == {"resources": 0, "endpoints": 0, "proxies": 0}


def test_usage_counts_what_the_tenant_creates(api, other_api):
    for name in ("m1", "m2"):
        assert api.post("/api/v1/meshes", {"name": name}, format="json").status_code == 201
    group = {"name": "eg1", "endpoints": [{"address": "10.0.0.1", "port": 80}, {"address": "10.0.0.2", "port": 80}]}
    assert api.post("/api/v1/endpoint-groups", group, format="json").status_code == 201
    # Another tenant's objects do not count.
    assert other_api.post("/api/v1/meshes", {"name": "m9"}, format="json").status_code == 201

    usage = api.get("/api/v1/tenant").json()["usage"]
    assert usage["resources"] == 3
    assert usage["endpoints"] == 2
    assert other_api.get("/api/v1/tenant").json()["usage"]["resources"] == 1

    assert api.delete("/api/v1/meshes/m2").status_code == 204
    assert api.get("/api/v1/tenant").json()["usage"]["resources"] == 2


def test_the_tenant_is_read_only_and_any_role_may_read_it(tenant, client_for, api):
    viewer = client_for(tenant, role=Role.VIEWER, name="viewer")
    assert viewer.get("/api/v1/tenant").json()["name"] == "acme"
    assert api.patch("/api/v1/tenant", {"max_resources": 10**6}, format="json").status_code == 405
    assert api.put("/api/v1/tenant", {"max_resources": 10**6}, format="json").status_code == 405
    assert api.get("/api/v1/tenant").json()["max_resources"] == 2000


def test_the_tenant_comes_from_the_key(api, other_api):
    assert api.get("/api/v1/tenant").json()["name"] == "acme"
    assert other_api.get("/api/v1/tenant").json()["name"] == "globex"


# --- members --------------------------------------------------------------------


def test_admin_adds_a_member(admin, tenant):
    response = admin.post(MEMBERS, {"username": "alice", "role": "editor"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["username"] == "alice"
    assert response.json()["role"] == "editor"
    membership = Membership.objects.get(tenant=tenant, user__username="alice")
    assert membership.role == "editor"
    read = admin.get(f"{MEMBERS}/alice")
    assert read.status_code == 200
    assert read.json()["role"] == "editor"
    assert [item["username"] for item in admin.get(MEMBERS).json()["results"]] == ["alice"]


def test_duplicate_member_is_400(admin, tenant):
    assert admin.post(MEMBERS, {"username": "alice", "role": "editor"}, format="json").status_code == 201
    again = admin.post(MEMBERS, {"username": "alice", "role": "viewer"}, format="json")
    assert again.status_code == 400
    assert ("username", "duplicate") in codes(again)
    assert Membership.objects.get(tenant=tenant, user__username="alice").role == "editor"


def test_patch_changes_the_role(admin, tenant):
    assert admin.post(MEMBERS, {"username": "alice", "role": "editor"}, format="json").status_code == 201
    response = admin.patch(f"{MEMBERS}/alice", {"role": "viewer"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["role"] == "viewer"
    assert Membership.objects.get(tenant=tenant, user__username="alice").role == "viewer"


def test_the_username_of_a_membership_cannot_change(admin, tenant):
    assert admin.post(MEMBERS, {"username": "alice", "role": "editor"}, format="json").status_code == 201
    response = admin.patch(f"{MEMBERS}/alice", {"username": "mallory"}, format="json")
    assert response.status_code == 400
    assert ("username", "immutable") in codes(response)
    assert Membership.objects.filter(tenant=tenant, user__username="alice").exists()


def test_only_an_owner_can_grant_owner(admin, api, tenant):
    refused = admin.post(MEMBERS, {"username": "bob", "role": "owner"}, format="json")
    assert refused.status_code == 400
    assert ("role", "role_too_high") in codes(refused)
    assert not Membership.objects.filter(tenant=tenant, user__username="bob").exists()

    assert admin.post(MEMBERS, {"username": "alice", "role": "editor"}, format="json").status_code == 201
    promoted = admin.patch(f"{MEMBERS}/alice", {"role": "owner"}, format="json")
    assert promoted.status_code == 400
    assert ("role", "role_too_high") in codes(promoted)
    assert Membership.objects.get(tenant=tenant, user__username="alice").role == "editor"

    # The owner key may.
    assert api.patch(f"{MEMBERS}/alice", {"role": "owner"}, format="json").json()["role"] == "owner"
    assert api.post(MEMBERS, {"username": "bob", "role": "owner"}, format="json").status_code == 201


def test_editor_and_read_keys_cannot_change_members(tenant, client_for, admin):
    assert admin.post(MEMBERS, {"username": "alice", "role": "viewer"}, format="json").status_code == 201
    editor = client_for(tenant, role=Role.EDITOR, name="editor")
    assert editor.post(MEMBERS, {"username": "bob", "role": "viewer"}, format="json").status_code == 403
    assert editor.patch(f"{MEMBERS}/alice", {"role": "editor"}, format="json").status_code == 403
    assert editor.delete(f"{MEMBERS}/alice").status_code == 403
    reader = client_for(tenant, role=Role.OWNER, scope="read", name="reader")
    assert reader.post(MEMBERS, {"username": "bob", "role": "viewer"}, format="json").status_code == 403
    assert list(Membership.objects.filter(tenant=tenant).values_list("user__username", "role")) == [
        ("alice", "viewer")
    ]


def test_delete_removes_the_member(admin, tenant):
    assert admin.post(MEMBERS, {"username": "alice", "role": "editor"}, format="json").status_code == 201
    assert admin.delete(f"{MEMBERS}/alice").status_code == 204
    assert admin.get(f"{MEMBERS}/alice").status_code == 404
    assert admin.get(MEMBERS).json()["results"] == []
    assert not Membership.objects.filter(tenant=tenant).exists()
    # ... and may be added again.
    assert admin.post(MEMBERS, {"username": "alice", "role": "viewer"}, format="json").status_code == 201


def test_another_tenants_members_are_not_visible(api, other_api):
    assert other_api.post(MEMBERS, {"username": "carol", "role": "editor"}, format="json").status_code == 201
    assert api.get(MEMBERS).json()["results"] == []
    assert api.get(f"{MEMBERS}/carol").status_code == 404
    assert api.patch(f"{MEMBERS}/carol", {"role": "viewer"}, format="json").status_code == 404
    assert api.delete(f"{MEMBERS}/carol").status_code == 404
    assert other_api.get(f"{MEMBERS}/carol").json()["role"] == "editor"


def test_one_user_in_two_tenants_has_two_independent_memberships(api, other_api):
    assert api.post(MEMBERS, {"username": "dave", "role": "editor"}, format="json").status_code == 201
    assert other_api.post(MEMBERS, {"username": "dave", "role": "viewer"}, format="json").status_code == 201
    assert api.delete(f"{MEMBERS}/dave").status_code == 204
    assert other_api.get(f"{MEMBERS}/dave").json()["role"] == "viewer"
    assert get_user_model().objects.filter(username="dave").count() == 1


def test_a_members_email_given_by_one_tenant_is_not_shown_to_another(api, other_api):
    """Users are shared between tenants (one account, many memberships), so the
    e-mail address acme recorded must not be what globex sees when it adds a
    member of the same username: that would leak one tenant's data to another."""
    created = api.post(MEMBERS, {"username": "erin", "email": "erin@acme.example", "role": "editor"}, format="json")
    assert created.status_code == 201
    assert created.json()["email"] == "erin@acme.example"

    theirs = other_api.post(MEMBERS, {"username": "erin", "role": "viewer"}, format="json")
    assert theirs.status_code == 201
    assert "erin@acme.example" not in theirs.content.decode()
    assert "erin@acme.example" not in other_api.get(f"{MEMBERS}/erin").content.decode()
    assert "erin@acme.example" not in other_api.get(MEMBERS).content.decode()
