from rest_framework import permissions

from service.tenants.models import APIKey, Role


class TenantRolePermission(permissions.BasePermission):
    """Reads need any key of the tenant; writes need a read-write key whose role
    reaches the view's `write_role` (editor unless the view says otherwise)."""

    message = "This API key may not make this change."

    def has_permission(self, request, view):
        key = request.auth
        if not isinstance(key, APIKey):
            return False
        if request.method in permissions.SAFE_METHODS:
            return Role.at_least(key.role, getattr(view, "read_role", Role.VIEWER))
        if not key.can_write:
            self.message = "This API key is read-only."
            return False
        required = getattr(view, "write_role", Role.EDITOR)
        if not Role.at_least(key.role, required):
            self.message = f"This change needs the {required} role; the key has {key.role}."
            return False
        return True
