"""
The global send rate (MARKETING_SEND_RATE messages per second, 0 = unlimited).

Providers cap the rate per account, not per worker, so the limit is counted in Redis and
holds across every worker on every machine: a fixed window of one second (or 1/rate
seconds for rates below one per second), one INCR per message. Without Redis (the
file-system broker in development) each process counts for itself, and says so once.
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

    def acquire(self) -> None:
        while True:
            now = time.time()
            slot = int(now // self.window)
            key = f"{self.key_prefix}:{slot}"
            pipe = self.client.pipeline()
            pipe.incr(key)
            pipe.expire(key, self.window * 2 + 1)
            try:
                count = pipe.execute()[0]
            except redis.exceptions.ConnectionError:
                # Redis restarting: wait for it rather than send uncounted (the task's time
                # limit bounds the wait).
                time.sleep(0.5)
                continue
            if count <= self.allowed:
                return
            time.sleep(max(0.001, (slot + 1) * self.window - now))


class LocalRateLimiter:
    _lock = threading.Lock()
    _slots: dict[int, int] = {}

    def __init__(self, rate: float):
        self.window, self.allowed = _window(rate)

    def acquire(self) -> None:
        while True:
            now = time.time()
            slot = int(now // self.window)
            with self._lock:
                count = self._slots.get(slot, 0) + 1
                self._slots.clear()
                self._slots[slot] = count
            if count <= self.allowed:
                return
            time.sleep(max(0.001, (slot + 1) * self.window - now))


class Unlimited:
    def acquire(self) -> None:
        return None


_warned = False


def send_rate_limiter():
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
