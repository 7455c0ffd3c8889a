"""API keys are looked up in the shared cache: a hit costs no query, a revoked
key fails on its next request, the cache never hands one tenant's key to
another's credential, and a cache outage falls back to the database."""
import hashlib
import threading

import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from service.tenants import key_cache
from service.tenants.auth import APIKeyAuthentication, find_api_key
from service.tenants.models import APIKey
from service.tenants.services import issue_api_key
from tests.conftest import TenantClient

KEYS = "/api/v1/api-keys"


def cached(plaintext):
    return cache.get(key_cache.cache_key(hashlib.sha256(plaintext.encode()).hexdigest()))


def authenticate(plaintext):
    request = Request(APIRequestFactory().get("/api/v1/meshes", HTTP_AUTHORIZATION=f"Bearer {plaintext}"))
    return APIKeyAuthentication().authenticate(request), request


def key_updates(queries):
    return [q["sql"] for q in queries if q["sql"].startswith('UPDATE "tenants_apikey"')]


def test_a_cache_hit_makes_no_query(api):
    authenticate(api.key)  # fills the cache
    assert isinstance(cached(api.key), APIKey)
    key_cache.dropped.read()  # then not again for DROPPED_CHECK_SEC
    with CaptureQueriesContext(connection) as queries:
        (user, key), request = authenticate(api.key)
        assert request.tenant.name == "acme"
        assert key.tenant_id == api.tenant.pk
        assert user is None  # the creator came along too, without a query
    assert len(queries) == 0, [q["sql"] for q in queries]


def test_a_request_with_a_cached_key_makes_one_query_less(api):
    api.get("/api/v1/meshes")
    cache.clear()
    key_cache.dropped.read()  # then not again for DROPPED_CHECK_SEC
    with CaptureQueriesContext(connection) as cold:
        assert api.get("/api/v1/meshes").status_code == 200
    with CaptureQueriesContext(connection) as warm:
        assert api.get("/api/v1/meshes").status_code == 200
    assert len(warm) == len(cold) - 1
    assert not any("tenants_apikey" in q["sql"] for q in warm.captured_queries)


def test_the_cache_is_keyed_by_digest_never_by_plaintext(api):
    authenticate(api.key)
    assert cached(api.key).pk == APIKey.objects.get(tenant=api.tenant, name="owner-read-write").pk
    secret = api.key.split("_", 2)[2]
    if hasattr(cache, "keys"):  # django-redis: look at every stored name
        names = cache.keys("*")
        assert names
        assert not any(secret in name or api.key in name for name in names)


@pytest.mark.django_db(transaction=True)
def test_a_revoked_key_is_refused_on_the_very_next_request(api):
    created = api.post(KEYS, {"name": "ci"}, format="json")
    holder = TenantClient(api.tenant, created.json()["key"])
    assert holder.get("/api/v1/meshes").status_code == 200
    assert isinstance(cached(holder.key), APIKey)

    assert api.delete(f"{KEYS}/ci").status_code == 204  # committed: this test runs outside a transaction
    assert cached(holder.key) == key_cache.TOMBSTONE
    refused = holder.get("/api/v1/meshes")
    assert refused.status_code == 401
    assert refused.json()["code"] == "authentication_failed"
    assert holder.get("/api/v1/meshes").status_code == 401


@pytest.mark.django_db(transaction=True)
def test_a_lookup_racing_the_revocation_cannot_keep_the_key_alive(api):
    """Another process reads the key while the delete is not yet committed and
    caches it: the tombstone written at commit overwrites that copy."""
    issued = issue_api_key(api.tenant, "ci")
    plaintext = issued.plaintext
    # Used just now, so the racer (not marking it used: no row lock to wait for) caches it.
    APIKey.objects.filter(pk=issued.record.pk).update(last_used_at=timezone.now())
    with transaction.atomic():
        APIKey.objects.get(pk=issued.record.pk).delete()
        cache.delete(key_cache.cache_key(hashlib.sha256(plaintext.encode()).hexdigest()))  # as if it had expired

        def other_process():
            assert find_api_key(plaintext) is not None  # the delete is not visible yet
            connection.close()

        racer = threading.Thread(target=other_process)
        racer.start()
        racer.join(10)
        assert isinstance(cached(plaintext), APIKey)
    assert cached(plaintext) == key_cache.TOMBSTONE
    assert find_api_key(plaintext) is None


def test_revocation_inside_a_transaction_is_seen_at_once(api):
    """Before commit too: a request later in the same transaction (or a test
    that never commits) must not find the key in the cache."""
    plaintext = issue_api_key(api.tenant, "ci").plaintext
    assert find_api_key(plaintext) is not None
    APIKey.objects.filter(tenant=api.tenant, name="ci").delete()
    assert find_api_key(plaintext) is None


def test_deleting_the_tenant_drops_its_cached_keys(api):
    authenticate(api.key)
    assert isinstance(cached(api.key), APIKey)
    api.tenant.delete()
    assert cached(api.key) == key_cache.TOMBSTONE
    assert find_api_key(api.key) is None


def test_a_changed_tenant_is_not_served_stale(api):
    assert api.get("/api/v1/tenant").json()["max_resources"] == 2000
    api.tenant.max_resources = 7
    api.tenant.save()
    assert api.get("/api/v1/tenant").json()["max_resources"] == 7


def test_a_changed_key_is_not_served_stale(tenant, client_for):
    viewer = client_for(tenant, role="viewer", name="viewer")
    assert viewer.get(KEYS).status_code == 403
    key = APIKey.objects.get(tenant=tenant, name="viewer")
    key.role = "admin"
    key.save()
    assert viewer.get(KEYS).status_code == 200


def test_another_tenants_key_never_yields_this_tenant(api, other_api):
    # Both cached.
    assert authenticate(api.key)[1].tenant.name == "acme"
    assert authenticate(other_api.key)[1].tenant.name == "globex"
    assert authenticate(api.key)[1].tenant.name == "acme"
    assert authenticate(other_api.key)[1].tenant.name == "globex"
    # This tenant's prefix with the other's secret matches no key.
    prefix = api.key.split("_", 2)[1]
    assert find_api_key(f"ilk_{prefix}_{other_api.key.split('_', 2)[2]}") is None
    # Even a poisoned entry (the other tenant's key under this credential's
    # digest) does not pass: the digest is checked on every request.
    cache.set(key_cache.cache_key(hashlib.sha256(api.key.encode()).hexdigest()), cached(other_api.key))
    assert find_api_key(api.key) is None
    assert api.get("/api/v1/meshes").status_code == 401


def test_a_cached_key_writes_last_used_at_about_once_a_resolution(api, monkeypatch):
    key = APIKey.objects.get(tenant=api.tenant, name="owner-read-write")
    long_ago = timezone.now() - timezone.timedelta(minutes=5)
    APIKey.objects.filter(pk=key.pk).update(last_used_at=long_ago)

    with CaptureQueriesContext(connection) as queries:
        for _ in range(20):
            assert api.get("/api/v1/meshes").status_code == 200
    assert len(key_updates(queries.captured_queries)) == 1
    first = APIKey.objects.get(pk=key.pk).last_used_at
    assert first > long_ago

    # A minute on, the cached copy has expired (its TTL ends before its
    # last_used_at goes stale): the refill writes once more.
    later = timezone.now() + timezone.timedelta(seconds=APIKey.LAST_USED_RESOLUTION_SEC + 1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    cache.clear()
    with CaptureQueriesContext(connection) as queries:
        for _ in range(20):
            assert api.get("/api/v1/meshes").status_code == 200
    assert len(key_updates(queries.captured_queries)) == 1
    assert APIKey.objects.get(pk=key.pk).last_used_at == later


def test_the_cached_copy_expires_before_its_last_used_at_goes_stale(api):
    key = APIKey.objects.get(tenant=api.tenant, name="owner-read-write")
    almost_stale = timezone.now() - timezone.timedelta(seconds=APIKey.LAST_USED_RESOLUTION_SEC - 10)
    APIKey.objects.filter(pk=key.pk).update(last_used_at=almost_stale)
    # The xDS server looks keys up without marking them used.
    assert find_api_key(api.key) is not None
    ttl = cache.ttl(key_cache.cache_key(key.digest)) if hasattr(cache, "ttl") else None
    if ttl is not None:
        assert 0 < ttl <= 10
    APIKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now() - timezone.timedelta(minutes=5))
    cache.clear()
    assert find_api_key(api.key) is not None
    assert cached(api.key) is None  # already stale: not cached, the next API request writes it


@pytest.fixture
def cache_down():
    # Its own override (not the `settings` fixture), undone before the cache is emptied.
    with override_settings(CACHES={
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
        }
    }):
        yield


def test_with_the_cache_down_keys_still_authenticate_from_the_database(api, cache_down, caplog):
    for _ in range(3):
        response = api.get("/api/v1/meshes")
        assert response.status_code == 200, response.content  # throttling fails open too
    assert "API key cache unavailable" in caplog.text
    assert APIKey.objects.get(tenant=api.tenant, name="owner-read-write").last_used_at is not None
    # Revocation still works (from the database) and does not fail for the cache.
    assert api.post(KEYS, {"name": "ci"}, format="json").status_code == 201
    assert api.delete(f"{KEYS}/ci").status_code == 204
    unknown = TenantClient(api.tenant, api.key + "x").get("/api/v1/meshes")
    assert unknown.status_code == 401
