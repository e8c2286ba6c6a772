"""Control-plane Redis access, off the decision path: published rulesets and profile samples (redis-py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from decision.store.connect import AnyRedis
from decision.store.follow import follow
from inbound_common.codecs import ActiveRulesetPointer, PublishedRuleset
from inbound_common.keys import KeySpace


class ControlStore:
    """Control-plane Redis access, off the decision path: published rulesets and profile samples.

    Every ruleset key shares the ``{rules}`` hash tag (one slot on a Cluster).
    Servers use their own client for it, with a longer timeout than
    decisions get: a ruleset may be megabytes.
    """

    def __init__(self, client: AnyRedis, keys: KeySpace | None = None) -> None:
        self.client = client
        self.keys = keys or KeySpace()
        self._closing = False

    async def close(self) -> None:
        self._closing = True
        await self.client.aclose()

    def stop_watching(self) -> None:
        self._closing = True

    # -- rulesets ----------------------------------------------------------
    async def add_version(
        self,
        version: str,
        *,
        sha256: str,
        source: str,
        text: str,
        now: float,
        author: str = "",
        previous: str = "",
        changes: Mapping[str, Any] | None = None,
    ) -> PublishedRuleset:
        """Store a ruleset under its version name unless the name is taken; returns what the name holds."""
        seq = int(await self.client.incr(self.keys.ruleset_seq))
        entry = PublishedRuleset(version, seq, sha256, now, source, text, author, previous, changes)
        if await self.client.hsetnx(self.keys.ruleset_versions, version, entry.encode()):
            return entry
        existing = await self.version(version)
        if existing is None:
            raise RuntimeError(f"ruleset {version!r} vanished while being published")
        return existing

    async def version(self, version: str) -> PublishedRuleset | None:
        raw = await self.client.hget(self.keys.ruleset_versions, version)
        return None if raw is None else PublishedRuleset.decode(version, raw)

    async def versions(self) -> list[PublishedRuleset]:
        """Every published ruleset, in publication order."""
        raw = await self.client.hgetall(self.keys.ruleset_versions)
        return sorted((PublishedRuleset.decode(k, v) for k, v in raw.items()), key=lambda e: e.seq)

    async def active(self) -> ActiveRulesetPointer | None:
        raw = await self.client.get(self.keys.ruleset_active)
        return None if raw is None else ActiveRulesetPointer.decode(raw)

    async def activate(self, pointer: ActiveRulesetPointer) -> int:
        """Point servers at a stored version and tell them; returns how many subscribers heard it."""
        await self.client.set(self.keys.ruleset_active, pointer.encode())
        return int(await self.client.publish(self.keys.rules_channel, pointer.version))

    async def watch_rules(self, on_change: Callable[[], Awaitable[None]], interval: float = 0.5) -> None:
        """Call ``on_change`` on every published activation, and every ``interval`` s (a missed message)."""
        await follow(
            self.client, self.keys.rules_channel, on_change, interval, lambda: self._closing,
            "published ruleset watch failed",
        )  # fmt: skip

    # -- profile samples (simulation) -------------------------------------
    async def sample_memberships(self, count: int, batch: int = 500) -> list[tuple[str, Mapping[bytes, bytes]]]:
        """Up to ``count`` profiles' raw membership hashes, found by SCAN (never KEYS)."""
        found: dict[str, None] = {}  # SCAN may return a key twice; keep the first-seen order
        async for key in self.client.scan_iter(match=self.keys.membership_pattern(), count=1000):
            profile_id = self.keys.profile_of(key)
            if profile_id is not None:
                found[profile_id] = None
            if len(found) >= count:
                break
        profiles = list(found)
        result: list[tuple[str, Mapping[bytes, bytes]]] = []
        for start in range(0, len(profiles), batch):
            chunk = profiles[start : start + batch]
            async with self.client.pipeline(transaction=False) as pipe:
                for profile_id in chunk:
                    pipe.hgetall(self.keys.membership(profile_id))
                hashes = await pipe.execute()
            result.extend(zip(chunk, hashes, strict=True))
        return result
