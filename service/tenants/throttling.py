from rest_framework.throttling import SimpleRateThrottle

from service.tenants.models import APIKey


class APIKeyRateThrottle(SimpleRateThrottle):
    """Requests per API key, counted in the shared cache (Redis in production),
    so every API process enforces one limit. A key may carry its own rate."""

    scope = "api_key"

    def allow_request(self, request, view):
        key = request.auth
        if isinstance(key, APIKey) and key.rate_limit:
            self.rate = key.rate_limit
            self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        key = request.auth
        if not isinstance(key, APIKey):
            return None
        return self.cache_format % {"scope": self.scope, "ident": key.pk}
