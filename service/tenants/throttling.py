"""Requests per API key, counted in the shared cache (Redis in production), so
every API process enforces one limit. A key may carry its own rate.

Each key has one counter per fixed window of the rate's period; a request is
allowed while the previous window's count, weighted by how much of it still
overlaps the sliding window ending now, plus the current window's count stays
within the limit. That costs one cache operation per request whatever the
rate (DRF's SimpleRateThrottle pickles every timestamp in the window), and it
can never allow more than the limit within one fixed window.
"""
import logging

from rest_framework.throttling import SimpleRateThrottle

from service.tenants.models import APIKey

log = logging.getLogger(__name__)

# A finished window's count, read once per process: it no longer changes
# (but for requests in flight across the boundary, a few milliseconds' worth).
finished_windows: dict[str, int] = {}
FINISHED_WINDOWS_KEPT = 10_000


class APIKeyRateThrottle(SimpleRateThrottle):
    scope = "api_key"

    def allow_request(self, request, view):
        key = request.auth
        if not isinstance(key, APIKey):
            return True
        if key.rate_limit:
            self.num_requests, self.duration = self.parse_rate(key.rate_limit)
        if self.num_requests is None:
            return True
        now = self.timer()
        window, elapsed = divmod(now, self.duration)
        self.overlap = 1 - elapsed / self.duration  # of the previous window
        try:
            return self.count_in(self.counter(key, int(window)), self.counter(key, int(window) - 1))
        except Exception as error:  # noqa: BLE001 - a cache outage must not refuse every request
            log.warning("Rate-limit counters unavailable, not throttling: %s", error)
            return True

    def counter(self, key, window: int) -> str:
        return f"throttle_{self.scope}_{key.pk}_{self.duration}_{window}"

    def count_in(self, current_counter: str, previous_counter: str) -> bool:
        self.current = self.increment(current_counter)
        self.previous = self.finished_count(previous_counter)
        if self.previous * self.overlap + self.current <= self.num_requests:
            return True
        # Refused requests do not count, as with DRF's throttles: a client
        # that keeps retrying is let in again as its earlier requests age.
        self.cache.decr(current_counter)
        self.current -= 1
        return False

    def increment(self, counter: str) -> int:
        try:
            return self.cache.incr(counter)
        except ValueError:  # the window's first request
            # Kept through the next window too, where it is the previous one.
            if self.cache.add(counter, 1, timeout=2 * self.duration + 1):
                return 1
            return self.cache.incr(counter)

    def finished_count(self, counter: str) -> int:
        count = finished_windows.get(counter)
        if count is None:
            if len(finished_windows) >= FINISHED_WINDOWS_KEPT:
                finished_windows.clear()
            count = finished_windows[counter] = self.cache.get(counter, 0)
        return count

    def wait(self):
        """Seconds until one more request would be allowed, if no other comes
        (at least one: DRF sends no Retry-After for zero). Rounded to the
        millisecond first, so float noise never adds a second to the ceiling
        DRF takes."""
        return max(1.0, round(self.seconds_until_room(), 3))

    def seconds_until_room(self) -> float:
        limit, duration = self.num_requests, self.duration
        if self.current + 1 > limit:
            # Only the next window has room, once enough of this one has aged.
            return (self.overlap + 1 - (limit - 1) / self.current) * duration
        # This window has room once enough of the previous one has aged.
        return (self.overlap - (limit - self.current - 1) / self.previous) * duration
