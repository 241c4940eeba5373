"""
The global send rate (MARKETING_SEND_RATE messages per second, 0 = unlimited).

Providers cap the rate per account, not per worker, so the limit is counted in Redis and
holds across every worker on every machine: a fixed window of one second (or 1/rate
seconds for rates below one per second). A batch takes a claim's worth of the window's
allowance at once (one INCRBY), before it claims and locks anything, and gives back what
its claim did not use. Without Redis (the file-system broker in development) each process
counts for itself, and says so once.

Why this is written here rather than taken from a package: what the send path needs is a
*blocking* acquire of a *variable* amount (a claim's worth) from *one* counter that every worker
process on every machine shares, with the unused part of a claim given back, and a wait (never
an uncounted send, never an error) while Redis is unreachable. Celery's `rate_limit` is per
worker and per task type, not per message across workers; django-ratelimit and `limits` count
hits and answer yes or no without waiting; pyrate-limiter can keep a bucket in Redis and delay,
but giving back part of an allowance and waiting out a Redis outage would still be code around
it, about as much as this module.
"""

from __future__ import annotations

import logging
import math
import threading
import time

import redis
from django.conf import settings

logger = logging.getLogger(__name__)


def _window(rate: float) -> tuple[int, int]:
    """(window in seconds, messages allowed per window)."""
    if rate >= 1:
        return 1, int(rate)
    seconds = math.ceil(1 / rate)
    return seconds, max(1, int(rate * seconds))


class RedisRateLimiter:
    def __init__(self, url: str, rate: float, key_prefix: str = "consentdesk:marketing:send-rate"):
        self.client = redis.Redis.from_url(url)
        self.window, self.allowed = _window(rate)
        self.key_prefix = key_prefix
        self._last_key = ""

    def acquire(self, wanted: int = 1) -> int:
        """
        Wait until at least one message may go out, then take up to `wanted` of the current
        window's allowance; returns how many were taken. The caller should hold no locks: this
        may wait a window, or as long as Redis is unreachable (the task's time limit bounds it).
        """
        while True:
            now = time.time()
            slot = int(now // self.window)
            key = f"{self.key_prefix}:{slot}"
            pipe = self.client.pipeline()
            pipe.incrby(key, wanted)
            pipe.expire(key, self.window * 2 + 1)
            try:
                count = pipe.execute()[0]
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                # Redis restarting or unreachable: wait for it rather than send uncounted.
                time.sleep(0.5)
                continue
            # Of the `wanted` just counted, those within the allowance are ours; the rest go back
            # at once so that others can still take what is left of this window.
            taken = max(0, min(wanted, self.allowed - (count - wanted)))
            if taken < wanted:
                self._give_back(key, wanted - taken)
            if taken:
                self._last_key = key
                return taken
            time.sleep(max(0.001, (slot + 1) * self.window - now))

    def release(self, unused: int) -> None:
        """Hand back part of the last allowance taken (the claim found fewer rows than it asked for)."""
        if unused > 0 and self._last_key:
            self._give_back(self._last_key, unused)

    def _give_back(self, key: str, count: int) -> None:
        if key != f"{self.key_prefix}:{int(time.time() // self.window)}":
            return  # that window is over (its key may be gone): nothing left to give back to
        pipe = self.client.pipeline()
        pipe.decrby(key, count)
        pipe.expire(key, self.window * 2 + 1)
        try:
            pipe.execute()
        except redis.exceptions.RedisError:
            # Lost: that window allows fewer messages than it could have, never more.
            logger.debug("could not give back %s of the send rate's allowance", count, exc_info=True)


class LocalRateLimiter:
    _lock = threading.Lock()
    _slot = -1
    _used = 0

    def __init__(self, rate: float):
        self.window, self.allowed = _window(rate)
        self._last_slot = -1

    def acquire(self, wanted: int = 1) -> int:
        while True:
            now = time.time()
            slot = int(now // self.window)
            with self._lock:
                cls = type(self)
                if slot > cls._slot:
                    cls._slot, cls._used = slot, 0
                taken = max(0, min(wanted, self.allowed - cls._used))
                cls._used += taken
            if taken:
                self._last_slot = slot
                return taken
            time.sleep(max(0.001, (slot + 1) * self.window - now))

    def release(self, unused: int) -> None:
        with self._lock:
            cls = type(self)
            if unused > 0 and self._last_slot == cls._slot:
                cls._used = max(0, cls._used - unused)


class Unlimited:
    def acquire(self, wanted: int = 1) -> int:
        return wanted

    def release(self, unused: int) -> None:
        return None


_warned = False


def send_rate_limiter() -> RedisRateLimiter | LocalRateLimiter | Unlimited:
    global _warned
    rate = float(settings.MARKETING_SEND_RATE or 0)
    if rate <= 0:
        return Unlimited()
    url = settings.MARKETING_RATE_LIMIT_REDIS_URL
    if url:
        return RedisRateLimiter(url, rate)
    if not _warned:
        logger.warning(
            "MARKETING_SEND_RATE=%s is enforced per worker process: without Redis there is no shared "
            "counter (set CELERY_BROKER_URL or MARKETING_RATE_LIMIT_REDIS_URL to a Redis URL).",
            rate,
        )
        _warned = True
    return LocalRateLimiter(rate)
