"""Redis access for the decision service: the only module of the package that imports redis.

Reads a profile's membership in one round trip and keeps a local copy of the
audience registry (small, changes only when audiences are synced), refreshed
when a change is published and polled as a safety net, never on a decision's
time. Also holds the write
helpers that tests and the demo use; the bulk writer is audience_sync.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import cached_property
from typing import Any, Protocol, cast
from urllib.parse import urlsplit, urlunsplit

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError

from decision.core.controls import TotalCheck
from decision.store import scripts
from decision.store.keys import (
    ActiveRulesetPointer,
    AudienceDirectory,
    AudienceEntry,
    KeySpace,
    PublishedRuleset,
    membership_field,
    membership_value,
)

log = logging.getLogger(__name__)

AnyRedis = aioredis.Redis | RedisCluster
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}

# A decision connection with commands unanswered this long is replaced (seconds).
STALLED_AFTER = 1.0

# While the registry is lost, the ERROR is repeated at most this often (seconds).
REGISTRY_LOST_LOG_EVERY = 30.0

# A membership of an audience code the registry copy does not know triggers a background re-read,
# at most this often (seconds): leftovers of a killed load must not make every decision re-read it.
UNKNOWN_CODE_REFRESH_EVERY = 0.1

# Raised by store reads; callers treat any of these as "Redis unavailable".
StoreError = (RedisError, OSError, asyncio.TimeoutError)


def connect(url: str, *, timeout: float = 0.25, max_connections: int = 64) -> AnyRedis:
    """A client for ``redis://``, ``rediss://`` (TLS), or ``redis+cluster://`` URLs.

    No retries past the deadline: a decision has one, and a failed read is
    answered with fallbacks. One immediate retry on a broken connection only: a
    pooled connection that Redis closed (a restart, a failover) fails once when
    next used, and a fresh one would answer.
    """
    parts = urlsplit(url)
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    }
    if parts.scheme in CLUSTER_SCHEMES:
        plain = urlunsplit((CLUSTER_SCHEMES[parts.scheme], *parts[1:]))
        return RedisCluster.from_url(plain, max_connections=max_connections, **options)
    # A pool that waits for a free connection (within the caller's deadline) rather than failing when
    # all are busy: a burst of decisions must queue, not degrade.
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=None, **options)
    return aioredis.Redis(connection_pool=pool)


def _pack(args: Sequence[Any]) -> bytes:
    """A command in RESP (hiredis's stubs type the tuple as having one element)."""
    packed: bytes = hiredis.pack_command(tuple(args))
    return packed


class _RespProtocol(asyncio.Protocol):
    """RESP on one connection: commands are written as they come, replies matched first in, first out."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader()
        self._waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._transport: asyncio.Transport | None = None
        self.closed = False
        # When the oldest unanswered command was written (None: nothing pending): a connection whose
        # replies stopped coming (a partition, a frozen server) is replaced rather than written into forever.
        self._waiting_since: float | None = None

    def stalled(self, now: float, patience: float) -> bool:
        return self._waiting_since is not None and now - self._waiting_since > patience

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            waiter = self._waiters.popleft()
            # Replies flow: the clock restarts for the commands still pending (an approximation that
            # errs towards patience: the next one may have been written a little earlier).
            self._waiting_since = time.monotonic() if self._waiters else None
            if waiter.done():  # its caller gave up (deadline): the reply is dropped, the order kept
                continue
            if isinstance(reply, hiredis.ReplyError):
                text = str(reply)
                waiter.set_exception(NoScriptError(text) if text.startswith("NOSCRIPT") else ResponseError(text))
            else:
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(RedisConnectionError(f"connection to Redis lost: {exc or 'closed by the server'}"))

    def call(self, command: bytes) -> asyncio.Future[Any]:
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.closed or self._transport is None:
            waiter.set_exception(RedisConnectionError("connection to Redis lost"))
            return waiter
        self._transport.write(command)
        if not self._waiters:
            self._waiting_since = time.monotonic()
        self._waiters.append(waiter)
        return waiter

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class FastPath:
    """One pipelined connection for the commands of every decision (HGETALL, EVALSHA).

    redis-py's asyncio client spends ~90 µs of Python per command here, and
    takes a pooled connection for each (erroring when 64 are busy); this
    connection carries every in-flight decision's command in turn, each
    written at once and answered in order, for ~15 µs. Single Redis over TCP
    only: a Cluster (slot routing, redirections) and TLS keep redis-py.
    """

    def __init__(
        self, host: str, port: int, *, username: str | None, password: str | None, db: int, timeout: float
    ) -> None:
        self._address = (host, port)
        self._auth = [a for a in (username, password) if a is not None]
        self._db = db
        self._timeout = timeout
        self._protocol: _RespProtocol | None = None
        self._connecting: asyncio.Task[_RespProtocol] | None = None

    @classmethod
    def for_client(cls, client: AnyRedis) -> FastPath | None:
        if not isinstance(client, aioredis.Redis):
            return None
        pool = client.connection_pool
        if pool.connection_class is not aioredis.Connection:  # TLS, unix sockets: redis-py
            return None
        options = pool.connection_kwargs
        return cls(
            options.get("host", "localhost"),
            int(options.get("port", 6379)),
            username=options.get("username"),
            password=options.get("password"),
            db=int(options.get("db", 0) or 0),
            timeout=float(options.get("socket_connect_timeout") or 1.0),
        )

    async def execute(self, *args: Any) -> Any:
        protocol = self._protocol
        if protocol is not None and protocol.stalled(time.monotonic(), STALLED_AFTER):
            log.warning("Redis has not answered for %.1f s on the decision connection: reconnecting", STALLED_AFTER)
            protocol.close()  # fails its pending commands (degraded answers); the next ones use a new connection
            protocol = self._protocol = None
        if protocol is None or protocol.closed:
            protocol = await self._connection()
        return await protocol.call(_pack(args))

    async def evalsha(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any] = ()) -> Any:
        try:
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except NoScriptError:  # a restarted or flushed Redis: load it, once
            await self.execute("SCRIPT", "LOAD", script.script)
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)

    async def _connection(self) -> _RespProtocol:
        # One connection attempt at a time, shared by the callers waiting for it.
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._connect())
        return await asyncio.shield(self._connecting)

    async def _connect(self) -> _RespProtocol:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._timeout):
            _, protocol = await loop.create_connection(_RespProtocol, *self._address)
            try:
                if self._auth:
                    await protocol.call(_pack(("AUTH", *self._auth)))
                if self._db:
                    await protocol.call(_pack(("SELECT", self._db)))
            except BaseException:
                protocol.close()
                raise
        self._protocol = protocol
        return protocol

    def close(self) -> None:
        if self._protocol is not None:
            self._protocol.close()


def _pairs(flat: Sequence[bytes]) -> dict[bytes, bytes]:
    """An HGETALL reply as a script returns it (field, value, field, value...) -> a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


async def _follow(
    client: AnyRedis,
    channel: str,
    on_wake: Callable[[], Awaitable[object]],
    interval: float,
    closing: Callable[[], bool],
    failure: str,
) -> None:
    """Call ``on_wake`` on every message on ``channel``, and every ``interval`` s (a missed message),
    until ``closing()``; on a Redis failure, log, wait an interval, subscribe again."""
    pubsub = None
    try:
        while not closing():
            try:
                if pubsub is None:  # on a Cluster, PUBLISH reaches every node: any one will do
                    pubsub = client.pubsub(ignore_subscribe_messages=True)
                    await pubsub.subscribe(channel)
                await on_wake()
                await pubsub.get_message(timeout=interval)
            except StoreError as exc:
                log.warning("%s: %s", failure, exc)
                if pubsub is not None:
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                    pubsub = None
                await asyncio.sleep(interval)
    finally:  # returned, or cancelled
        if pubsub is not None:
            await pubsub.aclose()  # type: ignore[no-untyped-call]


class StoreEvents(Protocol):
    """What the store reports, if asked (implemented by decision.observe.metrics.Metrics)."""

    def redis_read(self, operation: str, seconds: float) -> None: ...

    def directory_refreshed(self, directory: AudienceDirectory) -> None: ...


class ProfileStore:
    """Reads memberships; keeps the audience directory current."""

    def __init__(self, client: AnyRedis, keys: KeySpace | None = None) -> None:
        self.client = client
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
        # Metrics, when the server exports them (set after construction).
        self.events: StoreEvents | None = None
        self._fast = FastPath.for_client(client)

    async def close(self) -> None:
        self._closing = True
        if self._background_refresh is not None:
            self._background_refresh.cancel()
        if self._fast is not None:
            self._fast.close()
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
        key = self.keys.membership(profile_id)
        if self._fast is not None:
            result: Mapping[bytes, bytes] = _pairs(await self._fast.execute("HGETALL", key))
        else:
            result = cast(Mapping[bytes, bytes], await self.client.hgetall(key))
        if self.events is not None:
            self.events.redis_read("membership", time.perf_counter() - started)
        return result

    async def audiences(self, profile_id: str, now: float | None = None) -> frozenset[str]:
        """The audiences a profile belongs to now."""
        raw = await self.read_membership(profile_id)
        return self._decode(raw, time.time() if now is None else now)

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
        """The Redis node serving the profile ("" on a single Redis, or before the Cluster is discovered)."""
        if not isinstance(self.client, RedisCluster):
            return ""
        try:
            node = self.client.get_node_from_key(self.keys.membership(profile_id))
        except RedisError:
            return ""
        return "" if node is None else str(node.name)

    async def refresh_directory(self) -> AudienceDirectory:
        """Re-read the registry if its version changed (coalesced across callers)."""
        async with self._refresh_lock:
            keys = self.keys
            self.registry_reads_total += 1
            version = await self.client.get(keys.registry_version)
            if version is not None and int(version) == self.directory.version and self.directory.entries:
                return self.directory
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.get(keys.registry_version)
                pipe.hgetall(keys.audiences)
                pipe.hkeys(keys.pending)  # the codes snapshots are writing: known, not active yet
                version, raw, pending = await pipe.execute()
            self._replace_directory(AudienceDirectory.from_redis(version, raw, pending))
            if self.events is not None:
                self.events.directory_refreshed(self.directory)
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
        await _follow(
            self.client, self.keys.registry_channel, self.refresh_directory, interval, lambda: self._closing,
            "audience registry refresh failed",
        )  # fmt: skip

    # -- delivery controls: counters, reservations, feedback events ---------
    # Scripts: decision/store/lua/*.lua (docs/redis-keys.md). Each call names only keys of one hash tag.
    @cached_property
    def _scripts(self) -> dict[str, AsyncScript]:
        return {name: self.client.register_script(scripts.source(name)) for name in scripts.NAMES}

    async def read_profile(self, profile_id: str, now: float) -> tuple[frozenset[str], Mapping[bytes, bytes]]:
        """The profile's audiences now and its raw counters: one EVALSHA on its slot, one round trip."""
        started = time.perf_counter()
        keys = [self.keys.membership(profile_id), self.keys.counters(profile_id)]
        if self._fast is not None:
            membership, counters = await self._fast.evalsha(self._scripts["read_profile"], keys)
        else:
            membership, counters = await self._scripts["read_profile"](keys=keys)
        if self.events is not None:
            self.events.redis_read("profile", time.perf_counter() - started)
        return self._decode(_pairs(membership), now), _pairs(counters)

    async def select(self, profile_id: str, payload: bytes) -> list[list[int]]:
        """Run select.lua on the profile's counters: the indexes of the candidates taken, per slot."""
        started = time.perf_counter()
        keys, args = [self.keys.counters(profile_id)], [payload]
        if self._fast is not None:
            result = await self._fast.evalsha(self._scripts["select"], keys, args)
        else:
            result = await self._scripts["select"](keys=keys, args=args)
        if self.events is not None:
            self.events.redis_read("select", time.perf_counter() - started)
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
        if not checks:
            return []
        async with self.client.pipeline(transaction=False) as pipe:
            for check in checks:
                pipe.get(self._total_key(check))
            values = await pipe.execute()
        return [int(v or 0) for v in values]

    async def record_events(self, batches: Sequence[tuple[str, Sequence[str], bytes]]) -> list[list[int]]:
        """For each (profile id, event ids, payload): record_events.lua on that profile; pipelined."""
        calls = [
            ([self.keys.counters(pid), *(self.keys.event_seen(pid, e) for e in event_ids)], [payload])
            for pid, event_ids, payload in batches
        ]
        return [[int(n) for n in reply] for reply in await self._run_many("record_events", calls)]

    def _total_key(self, check: TotalCheck) -> str:
        return self.keys.total_count(check.offer_id, check.counted, check.bucket)

    async def _run_many(self, name: str, calls: Sequence[tuple[Sequence[Any], Sequence[Any]]]) -> list[Any]:
        """EVALSHA one script several times in one pipeline; load it and redo the calls Redis did not know it for."""
        if not calls:
            return []
        script = self._scripts[name]
        if isinstance(self.client, RedisCluster):
            # redis-py refuses EVALSHA in cluster pipelines: concurrent calls instead, one connection per
            # node in parallel (still one round trip of waiting); each loads the script on NOSCRIPT.
            return list(await asyncio.gather(*(script(keys=keys, args=args) for keys, args in calls)))
        results: list[Any] = [None] * len(calls)
        pending = list(range(len(calls)))
        for attempt in range(2):
            async with self.client.pipeline(transaction=False) as pipe:
                for index in pending:
                    keys, args = calls[index]
                    pipe.evalsha(script.sha, len(keys), *keys, *args)
                replies = await pipe.execute(raise_on_error=False)
            missing = []
            for index, reply in zip(pending, replies, strict=True):
                if isinstance(reply, NoScriptError) and attempt == 0:
                    missing.append(index)
                elif isinstance(reply, Exception):
                    raise reply
                else:
                    results[index] = reply
            if not missing:
                break
            await self.client.script_load(script.script)  # NOSCRIPT: a restarted or new Redis node
            pending = missing
        return results

    # -- writes (tests and the demo; bulk loads go through audience_sync) --
    async def ensure_audience(self, audience_id: str, *, name: str = "", source: str = "manual") -> AudienceEntry:
        """The registry entry of an audience, created (generation 1) if it is new.

        This store's decisions know it at once (other servers: on the published change).
        """
        entry = await self._register(audience_id, name=name, source=source)
        if entry.audience_id not in self.directory.entries:
            await self.refresh_directory()
        return entry

    async def _register(self, audience_id: str, *, name: str, source: str) -> AudienceEntry:
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
    async def add_version(self, version: str, *, sha256: str, source: str, text: str, now: float) -> PublishedRuleset:
        """Store a ruleset under its version name unless the name is taken; returns what the name holds."""
        seq = int(await self.client.incr(self.keys.ruleset_seq))
        entry = PublishedRuleset(version, seq, sha256, now, source, text)
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
        await _follow(
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
