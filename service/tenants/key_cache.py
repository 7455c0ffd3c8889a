"""API keys looked up once a minute, not once a request.

An API key with its tenant (and its creator) is kept in the shared cache
(Redis in production) under the SHA-256 digest of its plaintext, never the
plaintext. Revoking or changing a key leaves a tombstone there, at once and
again after commit, so every API process goes back to the database on the next
request. Entries are added, never overwritten: a request that read the key
just before the revocation committed cannot put it back over the tombstone.

The cache is an optimisation: when it fails, lookups go to the database.
(A revocation rolled back leaves its tombstone: that key is read from the
database until the tombstone expires.)
"""
import logging

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

log = logging.getLogger(__name__)

# How long a looked-up key is trusted without the database. Deleting or
# saving a key or its tenant drops it at once (models.py); what else could go
# stale (its creator's user row, a QuerySet.update() that sends no signal) is
# at most this old. Not above LAST_USED_RESOLUTION_SEC: see remember().
TTL_SEC = 60
# Outlives any request that read the key before its revocation committed.
TOMBSTONE_TTL_SEC = 2 * TTL_SEC
TOMBSTONE = "revoked"


def cache_key(digest: str) -> str:
    return f"api-key:{digest}"


def recall(digest: str):
    """The cached key whose plaintext has this digest, else None."""
    try:
        value = cache.get(cache_key(digest))
    except Exception as error:  # noqa: BLE001 - any cache failure means "ask the database"
        log.warning("API key cache unavailable, using the database: %s", error)
        return None
    return None if value is None or value == TOMBSTONE else value


def remember(key) -> None:
    """Keep `key` (fetched with its tenant and creator) until its
    last_used_at would be stale: a cached copy then never asks mark_used to
    write, and the refill a minute later writes it, once for all processes."""
    # A second short, so that a clock a little ahead elsewhere still sees it fresh.
    ttl = min(TTL_SEC, int(seconds_fresh(key)) - 1)
    if ttl < 1:
        return
    try:
        cache.add(cache_key(key.digest), key, timeout=ttl)
    except Exception as error:  # noqa: BLE001
        log.warning("API key cache unavailable, not caching: %s", error)


def seconds_fresh(key) -> float:
    """How long until mark_used would write the key's last_used_at again."""
    if key.last_used_at is None:
        return 0.0
    return key.LAST_USED_RESOLUTION_SEC - (timezone.now() - key.last_used_at).total_seconds()


def forget(digest: str) -> None:
    """Call when a key is deleted or changed. The tombstone is written now, so
    that a lookup racing the commit cannot add the key back, and again after
    commit, so that it outlives a long transaction (or a failed first write)
    and lasts TOMBSTONE_TTL_SEC from the moment the key is really gone."""
    bury(digest)
    transaction.on_commit(lambda: bury(digest))


def bury(digest: str) -> None:
    try:
        cache.set(cache_key(digest), TOMBSTONE, timeout=TOMBSTONE_TTL_SEC)
    except Exception:  # noqa: BLE001
        log.exception("Could not drop a revoked API key from the cache; it stays usable for up to %ss", TTL_SEC)
