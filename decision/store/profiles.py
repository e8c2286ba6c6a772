"""The decision path's Redis reads and counter scripts, and the audience directory kept current.

Reads a profile's memberships and attributes (one hash) in one round trip and keeps a local copy of the
audience registry (small, changes only when audiences are synced), refreshed
when a change is published and polled as a safety net, never on a decision's time. Decision-path commands
go through the fast path (``decision.store.fastpath``: plain, TLS or Cluster);
the registry and pub/sub through redis-py. Writers of memberships and the
registry live in audience_sync (atomic scripts), never here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from decision.core.controls import TotalCheck
from decision.store import scripts
from decision.store.connect import AnyRedis, StoreError, Target, connect
from decision.store.fastpath import Commands, FastPath, ScriptCall
from decision.store.follow import follow
from inbound_common.codecs import AttributeValue, AudienceDirectory
from inbound_common.keys import KeySpace

# connect: api/server.py imports it from here (it moved to decision.store.connect).
__all__ = ["ProfileStore", "StoreError", "StoreMetrics", "connect"]

log = logging.getLogger(__name__)

# While the registry is lost, the ERROR is repeated at most this often (seconds).
REGISTRY_LOST_LOG_EVERY = 30.0

# A membership of an audience code the registry copy does not know triggers a background re-read,
# at most this often (seconds): leftovers of a killed load must not make every decision re-read it.
UNKNOWN_CODE_REFRESH_EVERY = 0.1


def _pairs(flat: Sequence[bytes]) -> dict[bytes, bytes]:
    """An HGETALL reply (field, value, field, value...) -> a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


class OutcomeEvent(NamedTuple):
    """One event for count_outcomes.lua: its digests (``decision.core.outcomes``) and the field it counts in."""

    event_digest: str  # of the profile and event id: a retry is not counted twice
    token_digest: str  # of the profile, decision, placement and type: a token counts each type once
    field: str
    implied_digest: str = ""  # a click or dismissal: its token's impression digest, counted with it if new
    implied_field: str = ""


@dataclass(frozen=True, slots=True)
class OutcomeEvents:
    """Events of one offer-day (their decision's day) to count in its outcome counters."""

    offer_id: str
    day: str
    ttl_ms: int  # how long the counters must live (the retention past the day's end)
    seen_ttl_ms: int  # how long the digests must live (the token lifetime past the day's end)
    events: Sequence[OutcomeEvent]


@dataclass(frozen=True, slots=True)
class ProfileEvents:
    """One profile's events for record_events.lua: their ids, the decisions their tokens are of (the order of
    the payload's decision indexes) and the script's JSON payload."""

    profile_id: str
    event_ids: Sequence[str]
    decision_ids: Sequence[str]
    payload: bytes


class StoreMetrics(Protocol):
    """The metrics sink the store reports to, if given (implemented by decision.observe.metrics.Metrics)."""

    def redis_read(self, operation: str, seconds: float) -> None: ...

    def directory_refreshed(self, directory: AudienceDirectory) -> None: ...


class ProfileStore:
    """Reads memberships; keeps the audience directory current."""

    def __init__(self, client: AnyRedis, keys: KeySpace | None = None, fast: Commands | None = None) -> None:
        # redis-py: the registry, pub/sub, ping. The decision path: ``fast``, by default on the same
        # nodes, credentials and TLS options as the client.
        self.client = client
        self.fast: Commands = fast if fast is not None else FastPath(Target.of_client(client))
        self.keys = keys or KeySpace()
        self.directory = AudienceDirectory.build(0, {})
        # True while the registry is gone after we had audiences (Redis restarted empty or
        # was flushed): memberships are gone too, so decisions answer fallbacks, degraded.
        self.registry_lost = False
        self.registry_lost_total = 0  # times it happened, for metrics
        self.registry_reads_total = 0  # registry reads (version checks included), for metrics and tests
        self._registry_lost_logged_at = -float("inf")
        self._refresh_lock = asyncio.Lock()
        self._background_refresh: asyncio.Task[None] | None = None
        self._background_refresh_at = -float("inf")
        self._closing = False
        # The metrics sink, when the server exports metrics (set after construction).
        self.metrics: StoreMetrics | None = None

    async def close(self) -> None:
        self._closing = True
        if self._background_refresh is not None:
            self._background_refresh.cancel()
        self.fast.close()
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
        started = time.perf_counter()
        result = _pairs(await self.fast.execute("HGETALL", self.keys.membership(profile_id)))
        if self.metrics is not None:
            self.metrics.redis_read("membership", time.perf_counter() - started)
        return result

    async def audiences(self, profile_id: str, now: float | None = None) -> frozenset[str]:
        """The audiences a profile belongs to now."""
        raw = await self.read_membership(profile_id)
        return self._decode(raw, time.time() if now is None else now)

    async def profile(self, profile_id: str, now: float) -> tuple[frozenset[str], dict[str, AttributeValue]]:
        """The audiences a profile belongs to now and its attributes: one command, one round trip."""
        raw = await self.read_membership(profile_id)
        return self._decode(raw, now), self.directory.attributes(raw)

    def _decode(self, raw: Mapping[bytes, bytes], now: float) -> frozenset[str]:
        """A membership hash as of our registry copy; a code it does not know counts as no membership.

        Such a code is newer than the copy (its audience may have been switched in meanwhile): the
        registry is re-read in the background, never on the decision's time.
        """
        audiences, unknown = self.directory.audiences(raw, now)
        if unknown:
            self.refresh_soon()
        return audiences

    def refresh_soon(self) -> None:
        """Start a registry re-read unless one runs, or ran in the last ``UNKNOWN_CODE_REFRESH_EVERY`` s."""
        running = self._background_refresh
        if self._closing or (running is not None and not running.done()):
            return
        started = time.monotonic()
        if started - self._background_refresh_at < UNKNOWN_CODE_REFRESH_EVERY:
            return
        self._background_refresh_at = started
        self._background_refresh = asyncio.get_running_loop().create_task(self._refresh_quietly())

    async def _refresh_quietly(self) -> None:
        try:
            await self.refresh_directory()
        except StoreError as exc:  # the watcher retries and logs; a decision never waited for this
            log.debug("background registry refresh failed: %r", exc)

    def shard_of(self, profile_id: str) -> str:
        """The Redis node the fast path sends the profile's commands to ("" on a single Redis, or before
        the Cluster's slot table is read): the per-node circuit breaker's key."""
        return self.fast.node_of(self.keys.membership(profile_id))

    async def refresh_directory(self) -> AudienceDirectory:
        """Re-read the registry if its version changed, else take the codes of the snapshots loading now
        (a load's pending records announce their codes, version unchanged). Coalesced across callers."""
        async with self._refresh_lock:
            keys = self.keys
            self.registry_reads_total += 1
            async with self.client.pipeline(transaction=False) as pipe:  # one slot: {registry}
                pipe.get(keys.registry_version)
                pipe.hkeys(keys.pending)
                version, pending = await pipe.execute()
            if version is not None and int(version) == self.directory.version and self.directory.entries:
                self.directory = self.directory.with_pending(pending)
                return self.directory
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.get(keys.registry_version)
                pipe.hgetall(keys.audiences)
                pipe.hkeys(keys.pending)  # the codes snapshots are writing: known, not active yet
                version, raw, pending = await pipe.execute()
            self._replace_directory(AudienceDirectory.from_redis(version, raw, pending))
            if self.metrics is not None:
                self.metrics.directory_refreshed(self.directory)
            return self.directory

    def _replace_directory(self, new: AudienceDirectory) -> None:
        old = self.directory
        if new.entries:
            if self.registry_lost:
                log.warning("audience registry is back (version %d, %d audiences)", new.version, len(new.entries))
            self.registry_lost = False
        elif old.entries and new.version < old.version:
            # Versions only grow: a smaller one (or none) means the registry was wiped.
            self.registry_lost = True
            self.registry_lost_total += 1
            self._registry_lost_logged_at = -float("inf")
        if self.registry_lost and time.monotonic() - self._registry_lost_logged_at >= REGISTRY_LOST_LOG_EVERY:
            self._registry_lost_logged_at = time.monotonic()
            log.error(
                "AUDIENCE REGISTRY LOST: Redis holds no audiences (registry version %d): it was restarted empty or "
                "flushed. Answering fallbacks (degraded) until audience_sync reloads the audiences.",
                new.version,
            )
        self.directory = new

    async def watch_directory(self, interval: float = 1.0) -> None:
        """Keep the directory current: on every published change, and every ``interval`` s."""
        await follow(
            self.client, self.keys.registry_channel, self.refresh_directory, interval, lambda: self._closing,
            "audience registry refresh failed",
        )  # fmt: skip

    # -- delivery controls: counters, reservations, feedback events ---------
    # Scripts: decision/store/lua/*.lua (docs/redis-keys.md). Each call names only keys of one hash tag.

    async def read_profile(
        self, profile_id: str, now: float, *, attributes: bool = True
    ) -> tuple[frozenset[str], dict[str, AttributeValue], Mapping[bytes, bytes]]:
        """The profile's audiences now, its attributes (unless ``attributes`` is false: none decoded) and
        its raw counters: one EVALSHA on its slot, one round trip."""
        started = time.perf_counter()
        keys = [self.keys.membership(profile_id), self.keys.counters(profile_id)]
        membership, counters = await self.fast.run_script(scripts.script("read_profile"), keys)
        if self.metrics is not None:
            self.metrics.redis_read("profile", time.perf_counter() - started)
        raw = _pairs(membership)
        return self._decode(raw, now), self.directory.attributes(raw) if attributes else {}, _pairs(counters)

    async def select(self, profile_id: str, payload: bytes) -> list[list[int]]:
        """Run select.lua on the profile's counters: the indexes of the candidates taken, per slot."""
        started = time.perf_counter()
        keys, args = [self.keys.counters(profile_id)], [payload]
        result = await self.fast.run_script(scripts.script("select"), keys, args)
        if self.metrics is not None:
            self.metrics.redis_read("select", time.perf_counter() - started)
        return [[int(i) for i in taken] for taken in result]

    async def reserve_totals(
        self, reservations: Sequence[tuple[Sequence[TotalCheck], int]]
    ) -> list[tuple[bool, list[int]]]:
        """For each (an offer's total caps, amount): granted or not, and the counts; pipelined, one call per offer."""
        calls = []
        for checks, amount in reservations:
            keys = [self._total_key(c) for c in checks]
            args = [amount, *(c.limit for c in checks), *(c.ttl_ms or 0 for c in checks)]
            calls.append((keys, args))
        replies = await self._run_many("reserve_total", calls)
        return [(bool(int(reply[0])), [int(n) for n in reply[1:]]) for reply in replies]

    async def add_totals(self, changes: Sequence[tuple[Sequence[TotalCheck], Sequence[int]]]) -> list[list[int]]:
        """Add to an offer's total counters (events; negative: reservations given back); pipelined."""
        calls = [
            ([self._total_key(c) for c in checks], [*deltas, *(c.ttl_ms or 0 for c in checks)])
            for checks, deltas in changes
        ]
        return [[int(n) for n in reply] for reply in await self._run_many("add_totals", calls)]

    async def read_totals(self, checks: Sequence[TotalCheck]) -> list[int]:
        """Current counts of total caps (GETs pipelined; keys of several slots)."""
        values = await self.fast.pipeline([("GET", self._total_key(check)) for check in checks])
        return [int(v or 0) for v in values]

    async def record_events(
        self, batches: Sequence[ProfileEvents], outcomes: Sequence[OutcomeEvents] = ()
    ) -> tuple[list[list[int]], list[list[int]]]:
        """For each profile's events: record_events.lua on that profile (its counters, event keys and decision
        keys: one slot); for each offer-day of ``outcomes``: count_outcomes.lua on its counters. One pipeline: one
        round trip (per node on a Cluster).

        Returns the flags of each event (2: recorded / counted with its implied impression, 1: recorded /
        counted, 0: seen before), for both lists."""
        record, count = scripts.script("record_events"), scripts.script("count_outcomes")
        calls = [
            ScriptCall(
                record,
                [
                    self.keys.counters(b.profile_id),
                    *(self.keys.event_seen(b.profile_id, e) for e in b.event_ids),
                    *(self.keys.token_events(b.profile_id, d) for d in b.decision_ids),
                ],
                [b.payload],
            )
            for b in batches
        ]
        calls.extend(
            ScriptCall(
                count,
                [self.keys.outcomes(o.offer_id, o.day), self.keys.outcomes_seen(o.offer_id, o.day)],
                [o.ttl_ms, o.seen_ttl_ms, *(part for event in o.events for part in event)],
            )
            for o in outcomes
        )
        replies = [[int(n) for n in reply] for reply in await self.fast.pipeline(calls)]
        return replies[: len(batches)], replies[len(batches) :]

    async def add_outcomes(self, changes: Sequence[tuple[str, str, int, Mapping[str, int]]]) -> None:
        """For each (offer id, day, ttl ms, field -> amount): HINCRBYs and a PEXPIRE on its counters; pipelined."""
        commands: list[tuple[Any, ...]] = []
        for offer_id, day, ttl_ms, fields in changes:
            key = self.keys.outcomes(offer_id, day)
            commands.extend(("HINCRBY", key, name, amount) for name, amount in fields.items())
            commands.append(("PEXPIRE", key, ttl_ms))
        await self.fast.pipeline(commands)

    def _total_key(self, check: TotalCheck) -> str:
        return self.keys.total_count(check.offer_id, check.counted, check.bucket)

    async def _run_many(self, name: str, calls: Sequence[tuple[Sequence[Any], Sequence[Any]]]) -> list[Any]:
        """EVALSHA one script several times in one pipeline (per node on a Cluster); NOSCRIPT: loaded, redone."""
        script = scripts.script(name)
        return await self.fast.pipeline([ScriptCall(script, keys, args) for keys, args in calls])
