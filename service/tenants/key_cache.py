"""API keys looked up once a minute, not once a request.

An API key with its tenant (and its creator) is kept in the shared cache
(Redis in production) under the SHA-256 digest of its plaintext, never the
plaintext. Revoking or changing a key leaves a tombstone there, at once and
again after commit, so every API process goes back to the database on the next
request. Entries are added, never overwritten: a request that read the key
just before the revocation committed cannot put it back over the tombstone.

A tombstone cannot be written while Redis is away, and a copy cached before
then may be there still when it is back. So a revocation is also written to
the database, in the transaction that revokes (DroppedAPIKey), and every process reads
the keys dropped lately at most every DROPPED_CHECK_SEC and does not use a
cached copy of one of them: a revocation holds on every process within that,
whatever Redis did meanwhile.

The cache is an optimisation: when it fails, lookups go to the database.
(A revocation rolled back leaves its tombstone: that key is read from the
database until the tombstone expires.)
"""
import logging
import time
from datetime import timedelta

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
# How often a process reads the keys dropped lately from the database: a key
# revoked while Redis was away is refused everywhere within this.
DROPPED_CHECK_SEC = 2


def cache_key(digest: str) -> str:
    return f"api-key:{digest}"


def recall(digest: str):
    """The cached key whose plaintext has this digest, else None."""
    try:
        value = cache.get(cache_key(digest))
    except Exception as error:  # noqa: BLE001 - any cache failure means "ask the database"
        log.warning("API key cache unavailable, using the database: %s", error)
        return None
    if value is None or value == TOMBSTONE or value.digest in dropped:
        return None
    return value


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
    """Call when a key is deleted or changed, in the transaction that does it.
    The drop is recorded in the database with it. The tombstone is written
    now, so that a lookup racing the commit cannot add the key back, and again
    after commit, so that it outlives a long transaction (or a failed first
    write) and lasts TOMBSTONE_TTL_SEC from the moment the key is really gone."""
    record_dropped(digest)
    bury(digest)
    transaction.on_commit(lambda: bury(digest))


def record_dropped(digest: str) -> None:
    from service.tenants.models import DroppedAPIKey

    now = timezone.now()
    DroppedAPIKey.objects.filter(dropped_at__lt=now - timedelta(seconds=TOMBSTONE_TTL_SEC)).delete()
    DroppedAPIKey.objects.create(digest=digest, dropped_at=now)


class DroppedKeys:
    """The digests of the keys dropped within TOMBSTONE_TTL_SEC (longer than
    any copy cached before the drop lives), read at most every
    DROPPED_CHECK_SEC, and only when a cached copy is about to be used."""

    def __init__(self):
        self._read = (float("-inf"), frozenset())

    def __contains__(self, digest: str) -> bool:
        read_at, digests = self._read
        if time.monotonic() - read_at > DROPPED_CHECK_SEC:
            digests = self.read()
        return digest in digests

    def read(self) -> frozenset[str]:
        from service.tenants.models import DroppedAPIKey

        since = timezone.now() - timedelta(seconds=TOMBSTONE_TTL_SEC)
        digests = frozenset(DroppedAPIKey.objects.filter(dropped_at__gte=since).values_list("digest", flat=True))
        self._read = (time.monotonic(), digests)  # one assignment: threads may share this
        return digests


dropped = DroppedKeys()


def bury(digest: str) -> None:
    try:
        cache.set(cache_key(digest), TOMBSTONE, timeout=TOMBSTONE_TTL_SEC)
    except Exception:  # noqa: BLE001
        log.exception("Could not drop a revoked API key from the cache; it stays usable for up to %ss", TTL_SEC)
