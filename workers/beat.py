"""One beat at a time: Celery beat's in-memory scheduler that sends only
while its process holds the beat lock in Redis (redis-py's Lock, with a TTL
refreshed on every tick). A second `interlock beat` waits as a standby and
takes over within HEALTH_BEAT_LOCK_TTL_SEC of the holder stopping. The lock
is the first guard; the compare-and-swap that claims each probe round
(service/health/scheduling.py) is the second, should two beats ever overlap
(say, while a frozen holder's lock runs out).

A library does this too (celery-redbeat, which keeps the whole schedule in
Redis); our schedule is one fixed entry, so the lock is all we need of it,
and redis-py's Lock is it."""
import contextlib
import logging

from celery.beat import Scheduler
from django.conf import settings
from redis import Redis, RedisError
from redis.exceptions import LockError

logger = logging.getLogger(__name__)

LOCK_NAME = "interlock:health-beat"
# How often a standby beat tries to take the lock.
STANDBY_RETRY_SEC = 1.0


class SingleBeatScheduler(Scheduler):
    def __init__(self, *args, **kwargs):
        redis = Redis.from_url(settings.REDIS_URL, socket_timeout=settings.REDIS_TIMEOUT,
                               socket_connect_timeout=settings.REDIS_TIMEOUT)
        self.lock = redis.lock(LOCK_NAME, timeout=settings.HEALTH_BEAT_LOCK_TTL_SEC)
        self.holding = False
        super().__init__(*args, **kwargs)

    def tick(self, *args, **kwargs):
        if not self.hold_lock():
            return STANDBY_RETRY_SEC
        # Back before the lock runs out, however far the next entry is.
        return min(super().tick(*args, **kwargs), settings.HEALTH_BEAT_LOCK_TTL_SEC / 3)

    def hold_lock(self) -> bool:
        """Refreshes the lock if this beat holds it, else tries to take it."""
        try:
            try:
                holding = self.lock.reacquire()
            except LockError:  # not held: never was, or it ran out and another beat may hold it now
                holding = self.lock.acquire(blocking=False)
        except RedisError as exc:
            logger.warning("beat: cannot reach Redis for the beat lock (%s); not scheduling", exc)
            holding = False
        if holding != self.holding:
            logger.info("beat: %s", "holds the beat lock; scheduling" if holding else
                        "another beat holds the beat lock; standing by")
            self.holding = holding
        return holding

    def close(self):
        super().close()
        if self.holding:  # let a standby take over now rather than when the lock runs out
            with contextlib.suppress(LockError, RedisError):
                self.lock.release()
