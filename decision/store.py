"""Redis access for the decision service: the only module of the package that imports redis.

Reads a profile's membership in one round trip and keeps a local copy of the
audience registry (small, changes only when audiences are synced), refreshed
when a change is published and polled as a safety net. Also holds the write
helpers that tests and the demo use; the bulk writer is audience_sync.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from decision.keys import AudienceDirectory, AudienceEntry, KeySpace, membership_field, membership_value

log = logging.getLogger(__name__)

AnyRedis = aioredis.Redis | RedisCluster
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}

# Raised by store reads; callers treat any of these as "Redis unavailable".
StoreError = (RedisError, OSError, asyncio.TimeoutError)


def connect(url: str, *, timeout: float = 0.25, max_connections: int = 64) -> AnyRedis:
    """A client for ``redis://``, ``rediss://`` (TLS), or ``redis+cluster://`` URLs.

    No retries: a decision has a deadline, and a failed read is answered with
    fallbacks rather than retried past it.
    """
    parts = urlsplit(url)
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
    }
    if parts.scheme in CLUSTER_SCHEMES:
        plain = urlunsplit((CLUSTER_SCHEMES[parts.scheme], *parts[1:]))
        return RedisCluster.from_url(plain, max_connections=max_connections, **options)
    return aioredis.Redis.from_url(url, max_connections=max_connections, **options)


class ProfileStore:
    """Reads memberships; keeps the audience directory current."""

    def __init__(self, client: AnyRedis, keys: KeySpace | None = None) -> None:
        self.client = client
        self.keys = keys or KeySpace()
        self.directory = AudienceDirectory.build(0, {})
        self._refresh_lock = asyncio.Lock()
        self._closing = False

    async def close(self) -> None:
        self._closing = True
        await self.client.aclose()

    def stop_watching(self) -> None:
        """Make ``watch_directory`` return at its next wake-up.

        Cancelling alone is not enough: redis-py's ``get_message(timeout=...)``
        can swallow a cancellation that lands as its own timeout expires.
        """
        self._closing = True

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    # -- reads ------------------------------------------------------------
    async def read_membership(self, profile_id: str) -> Mapping[bytes, bytes]:
        """The profile's raw membership hash: one command, one round trip."""
        result = await self.client.hgetall(self.keys.membership(profile_id))
        return cast(Mapping[bytes, bytes], result)

    async def audiences(self, profile_id: str, now: float | None = None) -> frozenset[str]:
        """The audiences a profile belongs to now."""
        raw = await self.read_membership(profile_id)
        audiences, unknown = self.directory.audiences(raw, time.time() if now is None else now)
        if unknown:
            # A code newer than our registry copy: refresh once, decode again.
            await self.refresh_directory()
            audiences, _ = self.directory.audiences(raw, time.time() if now is None else now)
        return audiences

    async def refresh_directory(self) -> AudienceDirectory:
        """Re-read the registry if its version changed (coalesced across callers)."""
        async with self._refresh_lock:
            keys = self.keys
            version = await self.client.get(keys.registry_version)
            if version is not None and int(version) == self.directory.version and self.directory.entries:
                return self.directory
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.get(keys.registry_version)
                pipe.hgetall(keys.audiences)
                version, raw = await pipe.execute()
            self.directory = AudienceDirectory.from_redis(version, raw)
            return self.directory

    async def watch_directory(self, interval: float = 1.0) -> None:
        """Keep the directory current: on every published change, and every ``interval`` s."""
        pubsub = None
        while not self._closing:
            try:
                if pubsub is None and isinstance(self.client, aioredis.Redis):
                    pubsub = self.client.pubsub(ignore_subscribe_messages=True)
                    await pubsub.subscribe(self.keys.registry_channel)
                await self.refresh_directory()
                if pubsub is not None:
                    await pubsub.get_message(timeout=interval)
                else:
                    await asyncio.sleep(interval)
            except asyncio.CancelledError:
                if pubsub is not None:
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                raise
            except StoreError as exc:
                log.warning("audience registry refresh failed: %s", exc)
                if pubsub is not None:
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                    pubsub = None
                await asyncio.sleep(interval)
        if pubsub is not None:
            await pubsub.aclose()  # type: ignore[no-untyped-call]

    # -- writes (tests and the demo; bulk loads go through audience_sync) --
    async def ensure_audience(self, audience_id: str, *, name: str = "", source: str = "manual") -> AudienceEntry:
        """The registry entry of an audience, created (generation 1) if it is new."""
        keys = self.keys
        raw = await self.client.hget(keys.audiences, audience_id)
        if raw is not None:
            return AudienceEntry.decode(audience_id, raw)
        code = int(await self.client.incr(keys.next_code))
        entry = AudienceEntry(audience_id, code, 1, name=name or audience_id, source=source, synced_at=time.time())
        created = await self.client.hsetnx(keys.audiences, audience_id, entry.encode())
        if not created:  # another writer registered it first
            raw = await self.client.hget(keys.audiences, audience_id)
            if raw is None:
                raise RuntimeError(f"audience {audience_id!r} vanished from the registry while being created")
            return AudienceEntry.decode(audience_id, raw)
        await self._registry_changed()
        return entry

    async def _registry_changed(self) -> None:
        version = await self.client.incr(self.keys.registry_version)
        await self.client.publish(self.keys.registry_channel, str(version))

    async def add_membership(self, profile_id: str, audience_id: str, *, expires_at: float | None = None) -> None:
        entry = await self.ensure_audience(audience_id)
        await self.client.hset(
            self.keys.membership(profile_id),
            membership_field(entry.code, entry.generation),
            membership_value(expires_at),
        )

    async def remove_membership(self, profile_id: str, audience_id: str) -> None:
        raw = await self.client.hget(self.keys.audiences, audience_id)
        if raw is None:
            return
        entry = AudienceEntry.decode(audience_id, raw)
        await self.client.hdel(self.keys.membership(profile_id), membership_field(entry.code, entry.generation))
