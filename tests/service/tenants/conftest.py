import pytest
from django.core.cache import cache

from service.tenants import throttling


@pytest.fixture(autouse=True)
def _empty_cache():
    """API keys and rate-limit counters live in the shared cache (Redis here),
    finished windows' counts in the process too: every test starts without them."""
    cache.clear()
    throttling.finished_windows.clear()
    yield
    cache.clear()
    throttling.finished_windows.clear()
