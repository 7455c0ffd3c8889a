"""API keys: the credential every API request carries, and the tenant it names."""
from rest_framework import authentication, exceptions

from service.tenants import key_cache, secrets
from service.tenants.models import APIKey

API_KEY_KIND = "ilk"


def find_api_key(plaintext: str, *, mark_used: bool = False) -> APIKey | None:
    """The key (with its tenant and creator) that `plaintext` proves, from the
    shared cache when it is there. With `mark_used`, its last_used_at is kept
    to within LAST_USED_RESOLUTION_SEC."""
    prefix = secrets.split(plaintext, API_KEY_KIND)
    if prefix is None:
        return None
    key = key_cache.recall(secrets.digest(plaintext))
    if key is None:
        key = load_api_key(prefix, plaintext, mark_used=mark_used)
    # Every request proves its secret, whichever way the key was found.
    if key is None or not secrets.matches(plaintext, key.digest):
        return None
    if mark_used:
        key.mark_used()  # a cached copy is fresh: this writes nothing
    return key


def load_api_key(prefix: str, plaintext: str, *, mark_used: bool) -> APIKey | None:
    key = APIKey.objects.select_related("tenant", "created_by").filter(prefix=prefix).first()
    if key is None or not secrets.matches(plaintext, key.digest):
        return None
    if mark_used:
        # Before caching, so that the cached copy carries the fresh time.
        key.mark_used()
    key_cache.remember(key)
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
        key = find_api_key(header[1], mark_used=True)
        if key is None:
            raise exceptions.AuthenticationFailed("The API key is unknown or has been revoked.")
        request._request.tenant = key.tenant
        return (key.created_by, key)

    def authenticate_header(self, request):
        return self.keyword
