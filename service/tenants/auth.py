"""API keys: the credential every API request carries, and the tenant it names."""
from rest_framework import authentication, exceptions

from service.tenants import secrets
from service.tenants.models import APIKey

API_KEY_KIND = "ilk"


def find_api_key(plaintext: str) -> APIKey | None:
    prefix = secrets.split(plaintext, API_KEY_KIND)
    if prefix is None:
        return None
    key = APIKey.objects.select_related("tenant").filter(prefix=prefix).first()
    if key is None or not secrets.matches(plaintext, key.digest):
        return None
    return key


class APIKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer ilk_...`; sets request.auth to the key and
    request.tenant to its tenant."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header:
            return None
        # Auth schemes are case-insensitive (RFC 9110, section 11.1).
        if len(header) != 2 or header[0].lower() != self.keyword.lower():
            raise exceptions.AuthenticationFailed("Send the API key as 'Authorization: Bearer <key>'.")
        key = find_api_key(header[1])
        if key is None:
            raise exceptions.AuthenticationFailed("The API key is unknown or has been revoked.")
        key.mark_used()
        request._request.tenant = key.tenant
        return (key.created_by, key)

    def authenticate_header(self, request):
        return self.keyword
