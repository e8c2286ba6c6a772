"""The decision path's Redis connections: pipelined RESP on asyncio Protocols, plain TCP, TLS or a Cluster.

redis-py's asyncio client spends ~90 µs of Python per command here and takes a
pooled connection for each; one pipelined connection per node carries every
in-flight decision's commands, each written at once and answered in order
(hiredis parses), for ~15 µs. ``loadtest/redis_paths.py`` measures both.

Interface (``Commands``): ``execute`` one command, ``run_script`` (EVALSHA,
loading the script on NOSCRIPT), ``pipeline`` several commands and script
calls; ``node_of`` names the node serving a key. Commands are routed by their
first key: on a Cluster, by its slot (CRC16 of the hash tag) to the node the
slot table names; MOVED updates the slot and refreshes the table (it is also
refreshed every ``TOPOLOGY_REFRESH`` s and after a node fails); ASK sends
ASKING and the command to the importing node once.

A connection is replaced when its replies stop (``STALLED_AFTER`` s) or it
closes; an idle one is PINGed every ``IDLE_PING`` s and has TCP keepalive, so
a dead peer is noticed without traffic. Writes wait while the transport's
buffer is above its high-water mark (``pause_writing``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

import hiredis
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from decision.store.connect import Target
from decision.store.scripts import Script

log = logging.getLogger(__name__)

# A connection with commands unanswered this long is replaced (seconds).
STALLED_AFTER = 1.0
# An idle connection is PINGed this often (seconds): a peer gone silently is noticed before a decision waits on it.
IDLE_PING = 5.0
# TCP keepalive: first probe after this idle time, then every interval, given up after the count (seconds).
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 10, 5, 3
# A Cluster's slot table is read again this often (seconds), besides after MOVED or a node failure.
TOPOLOGY_REFRESH = 30.0
SLOTS = 16384
MAX_REDIRECTIONS = 3

Command = Sequence[Any]


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """One EVALSHA of a pipeline (reloaded and redone on NOSCRIPT)."""

    script: Script
    keys: Sequence[Any]
    args: Sequence[Any] = ()

    def command(self) -> tuple[Any, ...]:
        return ("EVALSHA", self.script.sha, len(self.keys), *self.keys, *self.args)


Call = Command | ScriptCall


class Commands(Protocol):
    """What the profile store needs of Redis on the decision path."""

    async def execute(self, *args: Any) -> Any: ...

    async def run_script(self, script: Script, keys: Sequence[Any], args: Sequence[Any] = ()) -> Any: ...

    async def pipeline(self, calls: Sequence[Call]) -> list[Any]: ...

    def node_of(self, key: str) -> str: ...

    def close(self) -> None: ...


def _pack(args: Sequence[Any]) -> bytes:
    """A command in RESP (hiredis's stubs type the tuple as having one element)."""
    packed: bytes = hiredis.pack_command(tuple(args))
    return packed


def _route_key(command: Sequence[Any]) -> Any:
    """The key a command is routed by: its first (EVALSHA: KEYS[1]); None for a keyless one."""
    name = command[0]
    if name in ("EVALSHA", "EVAL"):
        return command[3] if int(command[2]) > 0 else None
    return command[1] if len(command) > 1 and name not in ("PING", "SCRIPT", "CLUSTER") else None


def _slot(key: Any) -> int:
    return int(key_slot(key.encode() if isinstance(key, str) else key))


@dataclass(frozen=True, slots=True)
class _Redirect:
    ask: bool
    slot: int
    address: tuple[str, int]


def _redirect(error: BaseException) -> _Redirect | None:
    """MOVED <slot> <host>:<port> or ASK <slot> <host>:<port>; None for another error."""
    if not isinstance(error, ResponseError):
        return None
    kind, _, rest = str(error).partition(" ")
    if kind not in ("MOVED", "ASK"):
        return None
    slot, _, address = rest.partition(" ")
    host, _, port = address.rpartition(":")
    return _Redirect(kind == "ASK", int(slot), (host, int(port)))


def _set_keepalive(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family == socket.AF_UNIX:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", KEEPALIVE_IDLE), ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
                        ("TCP_KEEPCNT", KEEPALIVE_COUNT)):  # fmt: skip
        if hasattr(socket, name):  # Linux names; others keep the system's defaults
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


class _Connection(asyncio.Protocol):
    """RESP on one connection: commands are written as they come, replies matched first in, first out."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._reader = hiredis.Reader()
        self._waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._transport: asyncio.Transport | None = None
        self.closed = False
        # When the oldest unanswered command was written (None: nothing pending): a connection whose
        # replies stopped coming (a partition, a frozen server) is replaced rather than written into forever.
        self._waiting_since: float | None = None
        self._last_io = time.monotonic()
        self._drained: asyncio.Future[None] | None = None  # set while the transport asks us to stop writing
        self._timer: asyncio.TimerHandle | None = None

    # -- liveness ---------------------------------------------------------------
    def stalled(self, now: float) -> bool:
        return self._waiting_since is not None and now - self._waiting_since > STALLED_AFTER

    def _tick(self) -> None:
        """Every second: close a stalled connection; PING an idle one (its reply, or none, tells)."""
        now = time.monotonic()
        if self.stalled(now):
            log.warning("Redis %s has not answered for %.1f s: closing the connection", self.name, STALLED_AFTER)
            self.close()
            return
        if not self._waiters and now - self._last_io >= IDLE_PING and self._drained is None:
            for waiter in self.call(_PING):  # the reply is dropped; no reply: stalled, closed at a later tick
                waiter.add_done_callback(_consume)
        self._timer = asyncio.get_running_loop().call_later(min(STALLED_AFTER, IDLE_PING), self._tick)

    # -- asyncio.Protocol ---------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        _set_keepalive(transport)
        self._timer = asyncio.get_running_loop().call_later(min(STALLED_AFTER, IDLE_PING), self._tick)

    def data_received(self, data: bytes) -> None:
        self._last_io = time.monotonic()
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            waiter = self._waiters.popleft()
            # Replies flow: the clock restarts for the commands still pending (an approximation that
            # errs towards patience: the next one may have been written a little earlier).
            self._waiting_since = self._last_io if self._waiters else None
            if waiter.done():  # its caller gave up (deadline): the reply is dropped, the order kept
                continue
            if isinstance(reply, hiredis.ReplyError):
                text = str(reply)
                waiter.set_exception(NoScriptError(text) if text.startswith("NOSCRIPT") else ResponseError(text))
            else:
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
        lost = RedisConnectionError(f"connection to Redis {self.name} lost: {exc or 'closed'}")
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(lost)
        self.resume_writing()

    def pause_writing(self) -> None:
        if self._drained is None:
            self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    # -- commands -----------------------------------------------------------------
    async def writable(self) -> None:
        """Wait while the transport's buffer is above its high-water mark (a slow or stuck reader)."""
        while self._drained is not None and not self.closed:
            await asyncio.shield(self._drained)

    def call(self, command: bytes, replies: int = 1) -> list[asyncio.Future[Any]]:
        """Write ``command`` (one or several packed commands); a future per reply expected."""
        loop = asyncio.get_running_loop()
        waiters = [loop.create_future() for _ in range(replies)]
        if self.closed or self._transport is None:
            for waiter in waiters:
                waiter.set_exception(RedisConnectionError(f"connection to Redis {self.name} lost"))
            return waiters
        self._transport.write(command)
        self._last_io = time.monotonic()
        if not self._waiters:
            self._waiting_since = self._last_io
        self._waiters.extend(waiters)
        return waiters

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()  # connection_lost fails the pending commands


_PING = _pack(("PING",))
_ASKING = _pack(("ASKING",))


class _Link:
    """One node: a connection made on first use and made again when it closes or stalls."""

    def __init__(self, target: Target, address: tuple[str, int], *, select_db: bool) -> None:
        self.address = address
        self.name = target.unix_path or f"{address[0]}:{address[1]}"
        self._target = target
        self._auth = [a for a in (target.username, target.password) if a is not None]
        self._db = target.db if select_db else 0
        self._ssl: ssl.SSLContext | None = None if target.tls is None else target.tls.context()
        self.protocol: _Connection | None = None
        self._connecting: asyncio.Task[_Connection] | None = None

    def ready(self) -> _Connection | None:
        """The connection, when it can take a command now (open, answering, not holding writers back); else
        None: ``connection`` makes it so."""
        protocol = self.protocol
        if protocol is None or protocol.closed or protocol._drained is not None or protocol.stalled(time.monotonic()):
            return None
        return protocol

    async def connection(self) -> _Connection:
        ready = self.ready()
        if ready is not None:
            return ready
        protocol = self.protocol
        if protocol is not None and protocol.stalled(time.monotonic()):
            log.warning("Redis %s has not answered for %.1f s: reconnecting", self.name, STALLED_AFTER)
            protocol.close()  # fails its pending commands (degraded answers); the next ones use a new connection
            protocol = self.protocol = None
        if protocol is None or protocol.closed:
            # One connection attempt at a time, shared by the callers waiting for it.
            if self._connecting is None or self._connecting.done():
                self._connecting = asyncio.ensure_future(self._connect())
            protocol = await asyncio.shield(self._connecting)
        if protocol._drained is not None:
            await protocol.writable()
        return protocol

    async def send(self, commands: Sequence[Command], *, asking: bool = False) -> list[asyncio.Future[Any]]:
        """Write the commands at once (each after ASKING with ``asking``); a future per command's reply."""
        protocol = await self.connection()
        if not asking:
            return protocol.call(b"".join([_pack(c) for c in commands]), len(commands))
        waiters = protocol.call(b"".join([_ASKING + _pack(c) for c in commands]), 2 * len(commands))
        for ok in waiters[::2]:  # ASKING's own +OK
            ok.add_done_callback(_consume)
        return waiters[1::2]

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._target.connect_timeout):
            if self._target.unix_path is not None:
                _, protocol = await loop.create_unix_connection(lambda: _Connection(self.name), self._target.unix_path)
            else:
                host, port = self.address
                _, protocol = await loop.create_connection(
                    lambda: _Connection(self.name), host, port, ssl=self._ssl,
                    server_hostname=host if self._ssl is not None else None,
                )  # fmt: skip
            try:
                if self._auth:
                    await protocol.call(_pack(("AUTH", *self._auth)))[0]
                if self._db:
                    await protocol.call(_pack(("SELECT", self._db)))[0]
            except BaseException:
                protocol.close()
                raise
        self.protocol = protocol
        return protocol

    def close(self) -> None:
        if self.protocol is not None:
            self.protocol.close()


# Told when a caller is about to wait for the replies of the commands it has written (True) and when they have
# come (False): the per-stage timing of decisions (decision.service.stages) keeps other calls' work, done while
# this one waits, out of its stages. None (the default): nothing is told.
waiting: Callable[[bool], None] | None = None


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: no "exception never retrieved" for ASKING's reply


def _refresh_failed(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:  # the next call or period tries again
        log.warning("Redis Cluster slot table refresh failed: %s", exc)


class FastPath:
    """``Commands`` on one Redis or a Redis Cluster (``Target.cluster``)."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self._cluster = target.cluster
        self._links: dict[tuple[str, int], _Link] = {}
        self._seeds = [self._link(address) for address in target.nodes]
        # Cluster: the node serving each slot (None: not known yet); refreshed as described above.
        self._slots: list[_Link | None] = [None] * SLOTS
        self._refreshed_at = -float("inf")
        self._refreshing: asyncio.Task[None] | None = None

    def _link(self, address: tuple[str, int]) -> _Link:
        link = self._links.get(address)
        if link is None:
            link = self._links[address] = _Link(self._target, address, select_db=not self._cluster)
        return link

    # -- routing ------------------------------------------------------------------
    def node_of(self, key: str) -> str:
        """The node serving ``key``: ``host:port`` on a Cluster once its slot table is known, else ""."""
        if not self._cluster:
            return ""
        link = self._slots[_slot(key)]
        return "" if link is None else link.name

    async def _link_for(self, key: Any) -> _Link:
        if not self._cluster:
            return self._seeds[0]
        if time.monotonic() - self._refreshed_at > TOPOLOGY_REFRESH:
            refreshing = self._refresh_soon()
            if self._refreshed_at < 0:  # the first calls: nothing to route by yet
                await asyncio.shield(refreshing)
        if key is None:
            return next((link for link in self._slots if link is not None), self._seeds[0])
        link = self._slots[_slot(key)]
        if link is None:  # a slot no node serves (coverage lost): ask the table again
            await asyncio.shield(self._refresh_soon())
            link = self._slots[_slot(key)] or self._seeds[0]
        return link

    def _refresh_soon(self) -> asyncio.Task[None]:
        """The slot table refresh under way, or a new one: one at a time, shared by whoever waits for it."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._refresh())
            self._refreshing.add_done_callback(_refresh_failed)
        return self._refreshing

    async def _refresh(self) -> None:
        """Read CLUSTER SLOTS from the first node that answers (known masters first, then the seeds)."""
        known = list(dict.fromkeys([link for link in self._slots if link is not None] + self._seeds))
        failure: BaseException | None = None
        for link in known:
            try:
                (waiter,) = await link.send([("CLUSTER", "SLOTS")])
                async with asyncio.timeout(self._target.connect_timeout):
                    ranges = await waiter
            except (TimeoutError, OSError, RedisConnectionError, ResponseError) as exc:
                failure = exc
                continue
            slots: list[_Link | None] = [None] * SLOTS
            for start, end, master, *_ in ranges:
                host = master[0].decode() if isinstance(master[0], bytes) else str(master[0])
                link_for_range = self._link((host or link.address[0], int(master[1])))
                slots[int(start) : int(end) + 1] = [link_for_range] * (int(end) - int(start) + 1)
            self._slots = slots
            self._refreshed_at = time.monotonic()
            return
        raise RedisConnectionError(f"no Redis Cluster node answered CLUSTER SLOTS: {failure}")

    # -- commands -----------------------------------------------------------------
    async def execute(self, *args: Any) -> Any:
        link = self._seeds[0] if not self._cluster else await self._link_for(_route_key(args))
        try:
            protocol = link.ready()
            # A ready connection (the common case): written now, without the coroutines of send and connection.
            (waiter,) = protocol.call(_pack(args)) if protocol is not None else await link.send([args])
            if waiting is not None:
                waiting(True)
                reply = await waiter
                waiting(False)
                return reply
            return await waiter
        except ResponseError as exc:
            return await self._redirected(args, exc)
        except (RedisConnectionError, OSError):  # OSError: TimeoutError too (connecting)
            self._node_failed()
            raise

    async def run_script(self, script: Script, keys: Sequence[Any], args: Sequence[Any] = ()) -> Any:
        call = ScriptCall(script, keys, args)
        try:
            return await self.execute(*call.command())
        except NoScriptError:  # a restarted, flushed or new node: load it there, once
            await self._load(script, await self._link_for(_route_key(call.command())))
            return await self.execute(*call.command())

    async def pipeline(self, calls: Sequence[Call]) -> list[Any]:
        """Every call's reply, in order; written at once per node (one round trip), then the first error raised.

        A script Redis did not know is loaded and its calls redone; a redirected call is redone at its new node.
        """
        if not calls:
            return []
        commands = [c.command() if isinstance(c, ScriptCall) else tuple(c) for c in calls]
        by_link: dict[_Link, list[int]] = {}
        for index, command in enumerate(commands):
            by_link.setdefault(await self._link_for(_route_key(command)), []).append(index)
        waiters: list[asyncio.Future[Any] | None] = [None] * len(commands)
        try:
            for link, indexes in by_link.items():
                for index, waiter in zip(indexes, await link.send([commands[i] for i in indexes]), strict=True):
                    waiters[index] = waiter
        except (RedisConnectionError, OSError):
            self._node_failed()
            for sent in waiters:
                if sent is not None:
                    sent.add_done_callback(_consume)
            raise
        if waiting is not None:
            waiting(True)
        replies = await asyncio.gather(*cast(list[asyncio.Future[Any]], waiters), return_exceptions=True)
        if waiting is not None:
            waiting(False)
        for index, reply in enumerate(replies):
            call = calls[index]
            if isinstance(reply, NoScriptError) and isinstance(call, ScriptCall):
                replies[index] = await self.run_script(call.script, call.keys, call.args)
            elif isinstance(reply, ResponseError) and _redirect(reply) is not None:
                replies[index] = await self._redirected(commands[index], reply)
            elif isinstance(reply, (RedisConnectionError, OSError)):
                self._node_failed()
                raise reply
            elif isinstance(reply, BaseException):
                raise reply
        return replies

    async def _redirected(self, command: Sequence[Any], error: ResponseError) -> Any:
        """Follow MOVED (the slot has a new owner: remember it) or ASK (once, after ASKING) up to a few times."""
        for _ in range(MAX_REDIRECTIONS):
            redirect = _redirect(error)
            if redirect is None:
                raise error
            link = self._link(redirect.address)
            if not redirect.ask:
                self._slots[redirect.slot] = link
                self._refresh_soon()  # a failover or a resharding moves more than this slot
            (waiter,) = await link.send([command], asking=redirect.ask)
            try:
                return await waiter
            except ResponseError as exc:
                error = exc
        raise error

    def _node_failed(self) -> None:
        if self._cluster:  # perhaps a failover: ask who serves the slots now
            self._refresh_soon()

    async def _load(self, script: Script, link: _Link) -> None:
        (waiter,) = await link.send([("SCRIPT", "LOAD", script.text)])
        await waiter

    def close(self) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
        for link in self._links.values():
            link.close()
