"""Redis I/O for audience_sync: the only module of the package that imports redis.

Synchronous redis-py (a batch writer: large non-transactional pipelines, hiredis
parsing). Works on a single Redis and on Redis Cluster alike: every command
and script touches the keys of one hash tag — a profile's or the registry's —
and pipelines are non-transactional, so a cluster client splits them by node.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

import numpy as np
import orjson

# redis-py's own packing runs a Python generator per argument; hiredis packs a command in C.
from hiredis import Reader as _Reader
from hiredis import pack_command as _pack
from redis import Redis
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import BusyLoadingError, NoScriptError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError as _RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from audience_sync import lua, writes
from audience_sync.memberships import MembershipBlock
from audience_sync.registry import RegistryState
from audience_sync.writes import AudienceFields
from inbound_common.codecs import AudienceEntry
from inbound_common.keys import KeySpace
from inbound_common.urls import parse_redis_url

Client = Redis | RedisCluster

# Redis did not answer (exit status 3); any other Redis failure is a StoreFailure.
StoreUnavailable: Final = (RedisConnectionError, RedisTimeoutError, BusyLoadingError)
StoreFailure: Final = _RedisError
WRITE_PROBE_TTL_MS: Final = 60_000


Command = Sequence[str | bytes | int]


def connect(url: str, *, timeout: float = 10.0) -> Client:
    """A client for ``redis://``, ``rediss://`` (TLS) or ``redis+cluster://`` URLs (as the decision service's).

    A malformed URL raises InvalidRedisUrl (inbound_common.urls, a ValueError)."""
    target = parse_redis_url(url)
    options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": min(timeout, 5.0)}
    if target.cluster:
        return RedisCluster.from_url(target.plain, **options)
    return Redis.from_url(target.plain, **options)


class _Script:
    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()


_SCRIPTS: Final = {
    name: _Script(getattr(lua, name))
    for name in (
        "APPLY_CHANGES",
        "APPLY_ATTRIBUTES",
        "APPLY_PROFILE",
        "BEGIN_SNAPSHOT",
        "HEARTBEAT",
        "CUTOVER",
        "ENSURE_AUDIENCE",
        "TOUCH",
        "REGISTRY_STATE",
        "DROP_PENDING_IF_UNCHANGED",
        "ABANDON_SNAPSHOT",
        "MARK_PENDING",
        "WATCH_ACQUIRE",
        "WATCH_RENEW",
        "WATCH_RELEASE",
        "WATCH_RECORD",
    )
}


@dataclass(frozen=True, slots=True)
class Begun:
    """The answer of BEGIN_SNAPSHOT: a generation to write, or who is loading the audience already."""

    code: int = 0
    generation: int = 0
    entry: AudienceEntry | None = None
    busy_field: str = ""
    busy_owner: str = ""
    # What it took, to give back if the load is not applied (ABANDON_SNAPSHOT): the audience's last
    # generation before ('' none) and, for a new audience, the next-code before ('-' not new, '' none).
    generation_before: str = ""
    code_before: str = "-"


@dataclass(frozen=True, slots=True)
class CutoverItem:
    audience_id: str
    code: int
    generation: int
    members: int
    source: str


@dataclass(frozen=True, slots=True)
class CutoverGuard:
    """A cutover made for ``audience-sync watch``: refused unless the watcher still holds its lease, and
    recording its files in the watcher's ledger in the same script (``records``: object path, JSON)."""

    lease_key: str
    ledger_key: str
    lease_value: str
    records: Sequence[tuple[str, bytes]] = ()


@dataclass(frozen=True, slots=True)
class CutoverOutcome:
    version: int = 0
    # Why nothing was switched: superseded, conflict or lost ('' when it succeeded).
    refused: str = ""
    audience_id: str = ""
    detail: str = ""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _read_replies(sock: Any, reader: Any, count: int) -> list[Any]:
    """``count`` replies from a socket through a hiredis reader; an error reply is raised once all are read."""
    out: list[Any] = []
    gets, feed, recv = reader.gets, reader.feed, sock.recv
    while len(out) < count:
        reply = gets()
        if reply is False:
            data = recv(1 << 20)
            if not data:
                raise RedisConnectionError("Redis closed the connection")
            feed(data)
        else:
            out.append(reply)
    failed = next((reply for reply in out if isinstance(reply, ResponseError)), None)
    if failed is not None:
        raise failed
    return out


def _read_expected(sock: Any, expected: bytes) -> bytes:
    """Bytes from a socket while they are the start of ``expected``, up to all of it (never more: what
    follows belongs to the next pipeline). Replies that differ differ before their end (both are the same
    number of whole replies), so this never waits for bytes that do not come."""
    got = bytearray()
    while len(got) < len(expected):
        data = sock.recv(min(len(expected) - len(got), 1 << 20))
        if not data:
            raise RedisConnectionError("Redis closed the connection")
        start = len(got)
        got += data
        if not expected.startswith(data, start):
            break
    return bytes(got)


# Pipelines a snapshot writer sends before it reads the replies of the first: Redis works through them while
# the next block is parsed (their replies wait in the socket and in Redis's output buffer).
IN_FLIGHT: Final = 8


class SnapshotWriter:
    """A snapshot's membership writes on one connection, ``IN_FLIGHT`` pipelines ahead: the next block is
    parsed while Redis runs the ones before; each pipeline's counts are handed to its callback once its
    replies are read (``flush`` reads them all). On a Cluster (or without hiredis) each pipeline
    goes through redis-py's pipeline, which routes its commands, and is counted at once.

    The commands are encoded as RESP in columns (audience_sync.writes) and the replies read from the
    connection's socket by a hiredis reader of our own: redis-py's ``read_response`` costs microseconds of
    Python per reply.
    """

    def __init__(self, store: SyncStore) -> None:
        self.store = store
        self._conn: Any = None
        self._sock: Any = None
        self._reader: Any = None
        self._pending: list[tuple[Any, ...]] = []

    def __enter__(self) -> SnapshotWriter:
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        if error is None:
            self.flush()
        self.close(failed=error is not None)

    @property
    def packs(self) -> bool:
        """Whether ``write`` takes commands encoded as RESP (a single Redis), rather than routing tuples."""
        return not self.store.cluster

    def _write_by_node(self, block: MembershipBlock, fields: Sequence[AudienceFields], now: float) -> writes.Counted:
        """On a Cluster: each master's entries encoded and sent to it on one of its connections, all masters
        at once, then each one's replies read (a MOVED or ASK reply, while slots move, fails the load; it is
        cleaned up and can be run again)."""
        client: Any = self.store.client
        membership = self.store.keys.membership
        profiles = block.profiles.to_pylist()
        nodes: dict[str, tuple[Any, list[int]]] = {}
        for i, profile_id in enumerate(profiles):
            node = client.nodes_manager.get_node_from_slot(key_slot(membership(profile_id).encode()))
            nodes.setdefault(node.name, (node, []))[1].append(i)
        sent = []
        try:
            for node, entries in nodes.values():
                part = block.take(np.array(entries, dtype=np.int64))
                conn = node.redis_connection.connection_pool.get_connection()
                sent.append((node, conn, part))
                conn.send_packed_command([writes.packed(part, fields, self.store.membership_key)[0]])
            size = len(block.audience_ids)
            total = writes.Counted(np.zeros(size, np.int64), np.zeros(size, np.int64))
            for _, conn, part in sent:
                where = writes.layout(part, fields)
                replies = _read_replies(conn._sock, _Reader(replyError=ResponseError), where.replies)
                counted = writes.count(part, where, replies, now)
                total.members += counted.members
                total.unchanged += counted.unchanged
        except BaseException:
            for _, conn, _ in sent:
                conn.disconnect()
            raise
        finally:
            for node, conn, _ in sent:
                node.redis_connection.connection_pool.release(conn)
        return total

    def write(
        self,
        block: MembershipBlock,
        fields: Sequence[AudienceFields],
        now: float,
        counted: Callable[[writes.Counted], None],
        resp: Any = None,
    ) -> None:
        """Send the block's commands (``resp``: already encoded by writes.packed, when ``packs``); ``counted``
        gets its counts once its replies are read."""
        where = writes.layout(block, fields)
        store = self.store
        if store.cluster and not self._pending:
            counted(self._write_by_node(block, fields, now))
            return
        if not self.packs:
            replies = store.pipeline(writes.commands(block, fields, store.keys.membership))
            counted(writes.count(block, where, replies, now))
            return
        if self._conn is None:
            self._conn = store.client.connection_pool.get_connection()  # type: ignore[union-attr]
        try:
            if resp is None:
                resp = writes.packed(block, fields, store.membership_key)[0]
            self._conn.send_packed_command([resp])
            if self._sock is None:
                self._sock, self._reader = self._conn._sock, _Reader(replyError=ResponseError)
            self._pending.append((block, fields, where, now, counted))
            if len(self._pending) > IN_FLIGHT:
                self._collect()
        except BaseException:
            self.close(failed=True)
            raise

    def _collect(self) -> None:
        block, fields, where, now, counted = self._pending.pop(0)
        nil = b"_\r\n" if str(getattr(self._conn, "protocol", 2)) == "3" else b"$-1\r\n"
        expected = None if self._reader.has_data() else writes.expected_replies(block, fields, nil)
        if expected is not None:
            got = _read_expected(self._sock, expected)
            if got == expected:  # the common case, counted without reading a reply
                counted(writes.count_as_expected(block, fields))
                return
            self._reader.feed(got)
        counted(writes.count(block, where, _read_replies(self._sock, self._reader, where.replies), now))

    def flush(self) -> None:
        try:
            while self._pending:
                self._collect()
        except BaseException:
            self.close(failed=True)
            raise

    def close(self, *, failed: bool = False) -> None:
        conn, self._conn, self._sock, self._pending = self._conn, None, None, []
        if conn is not None:
            if failed:
                conn.disconnect()  # replies may be left unread: never reuse this connection
            self.store.client.connection_pool.release(conn)  # type: ignore[union-attr]


class SyncStore:
    """The Redis operations of audience_sync, on one client and key space."""

    def __init__(self, client: Client, keys: KeySpace | None = None) -> None:
        self.client = client
        self.keys = keys or KeySpace()
        self._loaded = False

    @classmethod
    def from_url(cls, url: str, keys: KeySpace | None = None) -> SyncStore:
        return cls(connect(url), keys)

    def close(self) -> None:
        self.client.close()

    @property
    def cluster(self) -> bool:
        return isinstance(self.client, RedisCluster)

    # -- scripts ------------------------------------------------------------
    def load_scripts(self) -> None:
        for script in _SCRIPTS.values():
            self.client.script_load(script.text)
        self._loaded = True

    def _run(self, name: str, keys: Sequence[str], args: Sequence[object]) -> Any:
        script = _SCRIPTS[name]
        if not self._loaded:
            self.load_scripts()
        try:
            return self.client.evalsha(script.sha, len(keys), *keys, *args)  # type: ignore[arg-type]
        except NoScriptError:  # a restart, failover or SCRIPT FLUSH: load again once
            self.load_scripts()
            return self.client.evalsha(script.sha, len(keys), *keys, *args)  # type: ignore[arg-type]

    def pipeline(self, commands: Sequence[Command], *, raise_on_error: bool = True) -> list[Any]:
        """Send commands in one non-transactional pipeline; their replies, in order.

        On a single Redis the commands are packed by hiredis and written on one
        connection, and the replies read back one by one: redis-py's Pipeline
        costs about three times more Python per command, which is most of the
        time of a bulk load. On a cluster, redis-py's ClusterPipeline splits the
        batch by node (and follows MOVED/ASK). With ``raise_on_error=False`` an
        error reply (e.g. WRONGTYPE) is returned in its place rather than raised.
        """
        client: Any = self.client  # redis-py's cluster and connection classes are partly untyped
        if self.cluster:
            pipe = client.pipeline(transaction=False)
            for command in commands:
                pipe.execute_command(*command)
            return cast(list[Any], pipe.execute(raise_on_error=raise_on_error))
        pool = client.connection_pool
        conn: Any = pool.get_connection()
        try:
            # hiredis's stub types its argument as a tuple of one item: any tuple of str, bytes, int is packed.
            packed = b"".join([_pack(tuple(command)) for command in commands])  # type: ignore[arg-type]
            conn.send_packed_command([packed])
            read = conn.read_response
            if raise_on_error:
                return [read() for _ in commands]
            replies: list[Any] = []
            for _ in commands:
                try:
                    replies.append(read())
                except ResponseError as exc:  # the whole reply was read: the connection stays in step
                    replies.append(exc)
            return replies
        except BaseException:
            conn.disconnect()  # replies may be left unread: never reuse this connection
            raise
        finally:
            pool.release(conn)

    def _per_profile(self, name: str, calls: Sequence[tuple[Sequence[str], Sequence[str]]]) -> list[Any]:
        """Run one script per (keys, args) in one pipeline. Repeated once after NOSCRIPT: its effects are idempotent."""
        script = _SCRIPTS[name]
        if not self._loaded:
            self.load_scripts()
        commands: list[Command] = [("EVALSHA", script.sha, len(keys), *keys, *args) for keys, args in calls]
        try:
            return self.pipeline(commands)
        except NoScriptError:
            self.load_scripts()
            return self.pipeline(commands)

    def ping(self) -> bool:
        return bool(self.client.ping())

    def probe_write(self) -> None:
        """Write a tiny key with a short TTL (``KeySpace.write_probe``): raises as a push's write would --
        StoreUnavailable when Redis does not answer, StoreFailure when it refuses writes (OOM, READONLY)."""
        self.client.set(self.keys.write_probe, b"1", px=WRITE_PROBE_TTL_MS)

    # -- registry -------------------------------------------------------------
    def registry_state(self) -> RegistryState:
        k = self.keys
        reply = self._run(
            "REGISTRY_STATE", [k.audiences, k.registry_version, k.next_code, k.generations, k.pending], []
        )
        return RegistryState.decode(reply)

    def begin_snapshot(
        self, audience_id: str, *, now: float, stale_after: float, source: str, owner: str, takeover: str = ""
    ) -> Begun:
        k = self.keys
        reply = self._run(
            "BEGIN_SNAPSHOT",
            [k.audiences, k.next_code, k.generations, k.pending, k.registry_version],
            [audience_id, repr(now), repr(stale_after), source, owner, takeover, k.registry_channel],
        )
        status = _text(reply[0])
        if status == "busy":
            return Begun(busy_field=_text(reply[1]), busy_owner=_text(reply[2]))
        entry = AudienceEntry.decode(audience_id, reply[3]) if reply[3] else None
        return Begun(
            int(reply[1]), int(reply[2]), entry, generation_before=_text(reply[4]), code_before=_text(reply[5])
        )

    def heartbeat(self, fields: Sequence[str], *, now: float, written: int) -> int:
        if not fields:
            return 0
        return int(self._run("HEARTBEAT", [self.keys.pending], [repr(now), written, *fields]))

    def pending_records(self, fields: Sequence[str]) -> list[bytes | None]:
        """The pending records of these generations (None: no longer pending)."""
        if not fields:
            return []
        return cast(list[bytes | None], self.client.hmget(self.keys.pending, list(fields)))

    def abandon(self, fields: Sequence[str]) -> None:
        """Drop pending records: their generations become garbage for ``gc`` at once."""
        if fields:
            self.client.hdel(self.keys.pending, *fields)

    def give_back(self, snapshots: Sequence[tuple[str, str, Begun]]) -> list[int]:
        """Drop the pending records of a load's (field, audience, begun) snapshots, all of whose fields it removed,
        and give back their generations and new codes where nothing else took them (ABANDON_SNAPSHOT's
        answer per snapshot: 0 gone, 1 dropped, 3 generation given back, 7 code too)."""
        if not snapshots:
            return []
        k = self.keys
        args: list[object] = []
        for field, audience_id, begun in snapshots:
            args += (field, audience_id, begun.generation, begun.generation_before, begun.code, begun.code_before)
        return [int(r) for r in self._run("ABANDON_SNAPSHOT", [k.pending, k.generations, k.next_code], args)]

    def mark_pending(self, fields: Sequence[str]) -> list[bool]:
        """Mark snapshots being loaded as written to by deltas (MARK_PENDING): True for each still pending."""
        if not fields:
            return []
        return [bool(r) for r in self._run("MARK_PENDING", [self.keys.pending], list(fields))]

    def cutover(
        self,
        items: Sequence[CutoverItem],
        *,
        now: float,
        extra: Mapping[str, object],
        guard: CutoverGuard | None = None,
    ) -> CutoverOutcome:
        k = self.keys
        args: list[object] = [repr(now), k.registry_channel, len(items)]
        for item in items:
            args += [item.audience_id, item.code, item.generation, item.members, item.source]
        args.append(orjson.dumps(dict(extra)) if extra else b"{}")
        keys = [k.audiences, k.registry_version, k.pending]
        if guard is not None:
            keys += [guard.lease_key, guard.ledger_key]
            args.append(guard.lease_value)
            for path, record in guard.records:
                args += [path, record]
        reply = self._run("CUTOVER", keys, args)
        if _text(reply[0]) == "ok":
            return CutoverOutcome(version=int(reply[1]))
        return CutoverOutcome(refused=_text(reply[0]), audience_id=_text(reply[1]), detail=_text(reply[2]))

    def ensure_audience(self, audience_id: str, *, now: float, source: str) -> AudienceEntry:
        k = self.keys
        raw = self._run(
            "ENSURE_AUDIENCE",
            [k.audiences, k.next_code, k.registry_version],
            [audience_id, repr(now), source, k.registry_channel],
        )
        return AudienceEntry.decode(audience_id, raw)

    def touch(self, member_deltas: Mapping[str, int], *, now: float, source: str) -> None:
        if not member_deltas:
            return
        args: list[object] = [repr(now), source]
        for audience_id, delta in member_deltas.items():
            args += [audience_id, delta]
        self._run("TOUCH", [self.keys.audiences], args)

    def drop_pending_if_unchanged(self, field: str, raw: bytes) -> bool:
        return bool(self._run("DROP_PENDING_IF_UNCHANGED", [self.keys.pending], [field, raw]))

    # -- audience-sync watch: lease and ledger (keys of the registry's tag) ---------------
    def lease_acquire(self, lease_key: str, fence_key: str, owner: str, ttl_ms: int) -> tuple[bool, str]:
        """Take the lease if nobody holds it: (True, our value) or (False, the holder's value)."""
        taken, value = self._run("WATCH_ACQUIRE", [lease_key, fence_key], [owner, ttl_ms])
        return bool(taken), _text(value)

    def lease_renew(self, lease_key: str, value: str, ttl_ms: int) -> bool:
        """Extend the lease if it still holds ``value``."""
        return bool(self._run("WATCH_RENEW", [lease_key], [value, ttl_ms]))

    def lease_release(self, lease_key: str, value: str) -> bool:
        return bool(self._run("WATCH_RELEASE", [lease_key], [value]))

    def ledger_write(self, lease_key: str, ledger_key: str, value: str, records: Sequence[tuple[str, bytes]]) -> bool:
        """Write ledger records while the lease holds ``value`` (fenced); False if it does not."""
        args: list[object] = [value]
        for path, record in records:
            args += [path, record]
        return bool(self._run("WATCH_RECORD", [lease_key, ledger_key], args))

    def ledger_read(self, ledger_key: str) -> dict[str, bytes]:
        """Every record of a watcher's ledger: object path -> JSON."""
        raw = cast(dict[bytes, bytes], self.client.hgetall(ledger_key))
        return {_text(path): record for path, record in raw.items()}

    # -- memberships ------------------------------------------------------------
    def snapshot_writer(self) -> SnapshotWriter:
        return SnapshotWriter(self)

    @property
    def membership_key(self) -> tuple[str, str]:
        """A membership key's text before and after the profile id (as inbound_common.keys spells it)."""
        before, _, after = self.keys.membership("\0").partition("\0")
        return before, after

    def apply_changes(self, batch: Mapping[str, Sequence[str]]) -> list[list[int]]:
        """Per profile: APPLY_CHANGES with its changes' args; 0/1/2 per change."""
        k = self.keys
        return self._per_profile(
            "APPLY_CHANGES", [((k.membership(p), k.event_times(p)), args) for p, args in batch.items()]
        )

    def apply_attributes(self, batch: Mapping[str, Sequence[str]]) -> list[list[int]]:
        """Per profile: APPLY_ATTRIBUTES with its (field, value) pairs flattened, in arrival order; per pair 0
        unchanged / 1 written / 2 stale."""
        membership = self.keys.membership
        return self._per_profile("APPLY_ATTRIBUTES", [((membership(p),), args) for p, args in batch.items()])

    def apply_profiles(self, batch: Mapping[str, tuple[Sequence[str], Sequence[str]]]) -> list[list[list[int]]]:
        """Per profile (its changes' args, its attribute pairs flattened): APPLY_PROFILE, one atomic write of
        both; [0/1/2 per change, 0/1/2 per pair]."""
        k = self.keys
        return self._per_profile(
            "APPLY_PROFILE",
            [((k.membership(p), k.event_times(p)), (str(len(c)), *c, *a)) for p, (c, a) in batch.items()],
        )

    def read_fields(self, batch: Mapping[str, Sequence[str]]) -> list[list[bytes | None]]:
        """Per profile: HMGET of the given membership fields (dry runs)."""
        membership = self.keys.membership
        return self.pipeline([("HMGET", membership(p), *fields) for p, fields in batch.items()])

    def read_event_times(self, batch: Mapping[str, Sequence[str]]) -> list[list[bytes | None]]:
        """Per profile: HMGET of the last event times of the given audience codes (dry runs)."""
        event_times = self.keys.event_times
        return self.pipeline([("HMGET", event_times(p), *codes) for p, codes in batch.items()])

    def read_membership(self, profile_id: str) -> dict[bytes, bytes]:
        return cast(dict[bytes, bytes], self.client.hgetall(self.keys.membership(profile_id)))

    # -- garbage collection ----------------------------------------------------------
    def scan_membership_keys(self, count: int) -> Iterator[bytes]:
        """Every membership key, by SCAN (on every primary of a cluster); never KEYS."""
        yield from self.client.scan_iter(match=self.keys.membership_pattern(), count=count)

    def field_names(self, keys: Sequence[bytes]) -> list[list[bytes]]:
        return self.pipeline([("HKEYS", key) for key in keys])

    def delete_fields(
        self, deletions: Sequence[tuple[bytes | str, Sequence[bytes | str]]], *, skip_errors: bool = False
    ) -> int:
        """HDEL a few fields per key (a hash left empty disappears with its last field).

        ``skip_errors``: a key that is not a hash (WRONGTYPE) is passed over rather than failing the batch.
        """
        if not deletions:
            return 0
        replies = self.pipeline([("HDEL", key, *fields) for key, fields in deletions], raise_on_error=not skip_errors)
        return sum(int(n) for n in replies if not isinstance(n, Exception))

    # -- streams ---------------------------------------------------------------
    def ensure_group(self, stream: str, group: str, start_id: str = "0") -> None:
        try:
            self.client.xgroup_create(stream, group, id=start_id, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read_group(
        self, stream: str, group: str, consumer: str, *, count: int, block_ms: int | None, pending: bool
    ) -> list[tuple[bytes, dict[bytes, bytes] | None]]:
        """New entries (``pending=False``), or this consumer's own delivered-but-unacked ones."""
        reply: Any = self.client.xreadgroup(
            group, consumer, {stream: "0" if pending else ">"}, count=count, block=None if pending else block_ms
        )
        if not reply:
            return []
        entries = reply[0][1]  # [[stream, [(id, fields), ...]]] (RESP2, the client's protocol)
        return [(entry_id, fields or None) for entry_id, fields in entries]

    def autoclaim(
        self, stream: str, group: str, consumer: str, *, min_idle_ms: int, start: str, count: int
    ) -> tuple[str, list[tuple[bytes, dict[bytes, bytes] | None]]]:
        """Claim entries left pending by consumers idle for ``min_idle_ms`` (crashed ones)."""
        reply = self.client.xautoclaim(stream, group, consumer, min_idle_ms, start_id=start, count=count)
        next_start = _text(reply[0])
        return next_start, [(entry_id, fields or None) for entry_id, fields in reply[1] if entry_id is not None]

    def ack(self, stream: str, group: str, ids: Sequence[bytes]) -> int:
        if not ids:
            return 0
        return int(self.client.xack(stream, group, *ids))

    def add_events(self, stream: str, events: Sequence[Mapping[str, str]]) -> list[bytes]:
        """XADD events (tests, the bench and tools that feed the stream)."""
        pipe = self.client.pipeline(transaction=False)
        for event in events:
            pipe.xadd(stream, dict(event))  # type: ignore[arg-type]
        return cast(list[bytes], pipe.execute())

    def pending_count(self, stream: str, group: str) -> int:
        summary = self.client.xpending(stream, group)
        return int(summary["pending"])

    # -- server facts (bench, status) -------------------------------------------
    def info(self, section: str) -> dict[str, Any]:
        return self.client.info(section)
