"""No admin can lock a tenant's owners out: owner keys and owner memberships
change only by an owner's hand."""
from service.tenants.models import APIKey, Membership, Role


def test_an_admin_cannot_revoke_an_owner_key(tenant, client_for):
    admin = client_for(tenant, role=Role.ADMIN, name="admin")
    response = admin.delete("/api/v1/api-keys/owner")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert APIKey.objects.filter(tenant=tenant, name="owner").exists()


def test_an_admin_cannot_demote_or_remove_an_owner(api, tenant, client_for):
    assert api.post("/api/v1/members", {"username": "olga", "role": "owner"}, format="json").status_code == 201
    admin = client_for(tenant, role=Role.ADMIN, name="admin")
    assert admin.patch("/api/v1/members/olga", {"role": "viewer"}, format="json").status_code == 403
    assert admin.delete("/api/v1/members/olga").status_code == 403
    assert Membership.objects.get(tenant=tenant, user__username="olga").role == Role.OWNER
    assert api.patch("/api/v1/members/olga", {"role": "admin"}, format="json").status_code == 200


def test_only_admins_read_the_member_list(tenant, client_for):
    editor = client_for(tenant, role=Role.EDITOR, name="editor")
    assert editor.get("/api/v1/members").status_code == 403
