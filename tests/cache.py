from django.core.cache.backends.redis import RedisCache


class RunScopedRedisCache(RedisCache):
    """
    Django's Redis cache, except that clear() deletes only this cache's own keys (its
    KEY_PREFIX) instead of flushing the whole Redis database, which other test runs and the
    Celery broker may share.
    """

    def clear(self) -> None:
        client = self._cache.get_client(None, write=True)
        pattern = f"{self.key_prefix}:*"
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)
