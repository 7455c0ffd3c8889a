"""A revoked API key is refused on every API process even when Redis, which
holds cached copies of keys, could not be told at revocation time: Redis (a
private one) hangs while the key is revoked and comes back with its data."""
import time

import pytest
from django.core.cache import cache
from django.test.utils import override_settings

from service.tenants import key_cache
from service.tenants.models import APIKey
from tests.service.tenants.test_api_key_cache import cached

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shared_cache(private_redis):
    """The API key cache on a Redis of this test's own, with short timeouts (a hung one fails fast)."""
    with override_settings(CACHES={"default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": private_redis.url,
        "KEY_PREFIX": "interlock",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
    }}):
        yield private_redis


def test_a_key_revoked_while_redis_is_away_is_refused_once_it_is_back(api, client_for, shared_cache):
    victim = client_for(api.tenant, name="victim")
    assert victim.get("/api/v1/meshes").status_code == 200
    assert isinstance(cached(victim.key), APIKey)  # a copy in Redis, good for a minute

    shared_cache.freeze()
    try:
        assert api.delete("/api/v1/api-keys/victim").status_code == 204  # the tombstone cannot be written
    finally:
        shared_cache.thaw()
    assert isinstance(cached(victim.key), APIKey)  # the stale copy survived

    # Every process reads the keys dropped lately from the database at least
    # every DROPPED_CHECK_SEC, so the copy is not used past that.
    time.sleep(key_cache.DROPPED_CHECK_SEC)
    refused = victim.get("/api/v1/meshes")
    assert refused.status_code == 401, refused.content
    assert api.get("/api/v1/meshes").status_code == 200  # other keys still come from the cache
    assert isinstance(cache.get(key_cache.cache_key(APIKey.objects.get(name="owner-read-write").digest)), APIKey)
