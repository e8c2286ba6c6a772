"""The fast path on real Redis: plain TCP, TLS, and a 3-master Cluster (slot routing, MOVED, ASK, NOSCRIPT).

Also: a dead or frozen peer is noticed without traffic (idle PING, TCP keepalive), and writes wait
while the transport's buffer is full.
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from decision.store import fastpath, scripts
from decision.store.connect import Target, TlsOptions, connect
from decision.store.embedded import EmbeddedRedis
from decision.store.fastpath import FastPath, ScriptCall
from decision.store.profiles import ProfileStore
from tests.certs import TestCertificates
from tests.conftest import PATIENT_REDIS_TIMEOUT
from tests.redis_cluster import LocalCluster
from tests.tls_redis import tls_redis_server
from tests.waiting import eventually, freeze

ECHO = scripts.Script.of("echo", "return {KEYS[1], ARGV[1]}")


def fast_for(url: str) -> FastPath:
    return FastPath(Target.of_client(connect(url, timeout=2.0)))


@pytest.fixture
async def plain(own_redis: EmbeddedRedis) -> AsyncIterator[FastPath]:
    fast = fast_for(own_redis.url)
    yield fast
    fast.close()


# -- plain TCP -------------------------------------------------------------------------
async def test_commands_scripts_and_pipelines(own_redis: EmbeddedRedis, plain: FastPath) -> None:
    admin = redis.Redis.from_url(own_redis.url)
    admin.hset("ib:m:{p1}", mapping={"1:1": "", "2:1": "99"})
    assert await plain.execute("HGETALL", "ib:m:{p1}") in ([b"1:1", b"", b"2:1", b"99"], [b"2:1", b"99", b"1:1", b""])
    assert await plain.run_script(ECHO, ["k"], ["v"]) == [b"k", b"v"]  # NOSCRIPT: loaded, then run
    admin.script_flush()
    replies = await plain.pipeline([("SET", "a", "1"), ScriptCall(ECHO, ["b"], ["w"]), ("INCR", "a"), ("GET", "a")])
    assert replies == [b"OK", [b"b", b"w"], 2, b"2"]
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        await plain.pipeline([("GET", "ib:m:{p1}"), ("GET", "a")])
    assert plain.node_of("ib:m:{p1}") == ""  # one Redis: one breaker


def test_a_unix_socket_is_served_too(tmp_path: Path) -> None:
    path = tmp_path / "redis.sock"
    with EmbeddedRedis(extra_args=["--unixsocket", str(path)]):

        async def ping() -> Any:
            fast = fast_for(f"unix://{path}")
            try:
                return await fast.execute("PING")
            finally:
                fast.close()

        assert asyncio.run(ping()) == b"PONG"


commands = st.lists(
    st.one_of(
        st.tuples(st.just("SET"), st.sampled_from("abc"), st.integers(0, 9).map(str)),
        st.tuples(st.just("GET"), st.sampled_from("abc")),
        st.tuples(st.just("INCR"), st.sampled_from("abc")),
        st.tuples(st.just("HSET"), st.sampled_from("hk"), st.sampled_from("xy"), st.binary(max_size=3)),
        st.tuples(st.just("HGETALL"), st.sampled_from("hk")),
        st.tuples(st.just("EVALSHA"), st.sampled_from("ab")),
    ),
    max_size=12,
)


@settings(max_examples=25, deadline=None)
@given(batch=commands)
def test_a_pipeline_answers_as_redis_py_does_one_by_one(redis_server: EmbeddedRedis, batch: list[Any]) -> None:
    """Same replies, same order, errors in their place (the fast path raises the first; compared up to it)."""
    calls = [ScriptCall(ECHO, [c[1]], ["v"]) if c[0] == "EVALSHA" else c for c in batch]
    client = redis.Redis.from_url(redis_server.url, protocol=2)  # RESP2, as the fast path speaks
    client.flushall()
    client.script_load(ECHO.text)
    connection = client.connection_pool.get_connection()  # raw replies: no redis-py response callbacks
    expected: list[Any] = []
    for call in calls:
        connection.send_command(*(call.command() if isinstance(call, ScriptCall) else call))
        try:
            expected.append(connection.read_response())
        except redis.ResponseError as exc:
            expected.append(exc)
            break
    client.connection_pool.release(connection)
    client.flushall()
    client.script_flush()  # the fast path must load it again

    async def run() -> list[Any] | BaseException:
        fast = fast_for(redis_server.url)
        try:
            return await fast.pipeline(calls)
        except redis.ResponseError as exc:
            return exc
        finally:
            fast.close()

    got = asyncio.run(run())
    client.close()
    if expected and isinstance(expected[-1], redis.ResponseError):
        assert isinstance(got, redis.ResponseError) and str(got) == str(expected[-1])
    else:
        assert got == expected


# -- liveness and back-pressure ----------------------------------------------------------
async def connected(fast: FastPath, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The fast path's connection to its one Redis, made; idle PINGs every 0.2 s from then on."""
    monkeypatch.setattr(fastpath, "IDLE_PING", 0.2)
    await fast.execute("PING")
    protocol = fast._seeds[0].protocol
    assert protocol is not None and protocol._transport is not None
    return protocol


async def test_keepalive_is_on_and_an_idle_connection_is_pinged(
    own_redis: EmbeddedRedis, plain: FastPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    protocol = await connected(plain, monkeypatch)
    sock = protocol._transport.get_extra_info("socket")
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    admin = redis.Redis.from_url(own_redis.url)
    admin.config_resetstat()

    def pinged() -> bool:  # idle: pinged every 0.2 s (checked every second at most)
        calls = admin.info("commandstats").get("cmdstat_ping", {}).get("calls", 0)
        return int(calls) >= 1

    await eventually(pinged, "the idle connection pinged")


async def test_a_frozen_server_is_noticed_without_traffic(
    own_redis: EmbeddedRedis, plain: FastPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    protocol = await connected(plain, monkeypatch)
    assert own_redis.process is not None
    await freeze(own_redis.process)
    try:
        await eventually(lambda: protocol.closed, "the connection closed")  # its idle PING not answered in 1 s
    finally:
        own_redis.process.send_signal(signal.SIGCONT)
    assert await plain.execute("PING") == b"PONG"  # a new connection
    assert plain._seeds[0].protocol is not protocol


async def test_writes_wait_while_the_transport_buffer_is_full(
    own_redis: EmbeddedRedis, plain: FastPath, monkeypatch: pytest.MonkeyPatch
) -> None:
    protocol = await connected(plain, monkeypatch)
    assert own_redis.process is not None
    transport = protocol._transport
    transport.set_write_buffer_limits(high=4096)
    await freeze(own_redis.process)
    try:
        big = b"x" * (8 << 20)  # more than the kernel buffers: the rest waits in the transport
        first = asyncio.ensure_future(plain.execute("SET", "big", big))
        await eventually(lambda: transport.get_write_buffer_size() > 4096, "the transport's buffer full")
        held = transport.get_write_buffer_size()
        second = asyncio.ensure_future(plain.execute("GET", "big"))
        for _ in range(10):  # loop turns, not time: the GET goes as far as it can without Redis
            await asyncio.sleep(0)
        # Not written, not even into the transport's buffer: it waits for the buffer to drain.
        assert transport.get_write_buffer_size() <= held and not second.done()
    finally:
        own_redis.process.send_signal(signal.SIGCONT)
    assert await first == b"OK"
    assert await second == big


# -- TLS -----------------------------------------------------------------------------------
@pytest.fixture
def tls_redis(certs: TestCertificates) -> Iterator[tuple[EmbeddedRedis, int]]:
    with tls_redis_server(certs) as started:
        yield started


async def test_tls_with_client_certificates(tls_redis: tuple[EmbeddedRedis, int], certs: TestCertificates) -> None:
    plain_server, tls_port = tls_redis
    redis.Redis.from_url(plain_server.url).hset("ib:m:{p1}", "1:1", "")
    query = f"ssl_ca_certs={certs.ca.cert}&ssl_certfile={certs.client.cert}&ssl_keyfile={certs.client.key}"
    store = ProfileStore(connect(f"rediss://127.0.0.1:{tls_port}/0?{query}", timeout=2.0))
    try:
        assert await store.read_membership("p1") == {b"1:1": b""}
        protocol = store.fast._seeds[0].protocol  # type: ignore[attr-defined]
        assert protocol._transport.get_extra_info("ssl_object") is not None  # encrypted, not plaintext
        assert await store.fast.run_script(ECHO, ["k"], ["v"]) == [b"k", b"v"]
    finally:
        await store.close()
    # The same options given as settings rather than in the URL.
    options = TlsOptions(ca_certs=str(certs.ca.cert), certfile=str(certs.client.cert), keyfile=str(certs.client.key))
    fast = FastPath(
        Target.of_client(connect(f"rediss://127.0.0.1:{tls_port}/0", tls=options, timeout=PATIENT_REDIS_TIMEOUT))
    )
    try:
        assert await fast.execute("HGETALL", "ib:m:{p1}") == [b"1:1", b""]
    finally:
        fast.close()
    refused = FastPath(Target.of_client(connect(f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={certs.ca.cert}")))
    with pytest.raises((OSError, redis.ConnectionError)):  # no client certificate
        await refused.execute("PING")
    refused.close()


@given(
    ca=st.none() | st.just("/ca.pem"),
    cert=st.none() | st.just("/c.pem"),
    reqs=st.sampled_from(["none", "optional", "required"]),
    check=st.booleans(),
)
def test_tls_options_read_back_from_redis_py_are_the_ones_given(
    ca: str | None, cert: str | None, reqs: str, check: bool
) -> None:
    given_options = TlsOptions(
        ca_certs=ca, certfile=cert, keyfile=cert and "/k.pem", cert_reqs=reqs, check_hostname=check
    )
    target = Target.of_client(connect("rediss://u:pw@h:6380/3", tls=given_options))
    assert target.tls == given_options
    assert (target.nodes, target.username, target.password, target.db) == ((("h", 6380),), "u", "pw", 3)


def test_tls_options_need_a_rediss_url() -> None:
    with pytest.raises(ValueError, match="need a rediss:// URL"):
        connect("redis://h:6379", tls=TlsOptions(ca_certs="/ca.pem"))


# -- Redis Cluster ------------------------------------------------------------------------
@pytest.fixture
async def on_cluster(redis_cluster: LocalCluster) -> AsyncIterator[FastPath]:
    fast = fast_for(redis_cluster.url)
    yield fast
    fast.close()


def cluster_client(cluster: LocalCluster) -> redis.RedisCluster:
    return redis.RedisCluster.from_url(cluster.url.replace("redis+cluster://", "redis://", 1))


async def test_cluster_routes_each_key_to_its_slot_owner(redis_cluster: LocalCluster, on_cluster: FastPath) -> None:
    keys = [f"ib:m:{{route-{i}}}" for i in range(30)]
    with cluster_client(redis_cluster) as client:
        for key in keys:
            client.hset(key, "1:1", key)
    for key in keys:
        assert await on_cluster.execute("HGETALL", key) == [b"1:1", key.encode()]
        assert on_cluster.node_of(key) == f"127.0.0.1:{redis_cluster.owner(key).port}"
    # One pipeline across the masters: replies in the order asked.
    assert await on_cluster.pipeline([("HGET", key, "1:1") for key in keys]) == [key.encode() for key in keys]
    # A script on every master, loaded where Redis did not know it.
    calls = [ScriptCall(ECHO, [key], ["v"]) for key in keys]
    assert await on_cluster.pipeline(calls) == [[key.encode(), b"v"] for key in keys]


async def test_cluster_follows_ask_during_a_migration_and_moved_after_it(
    redis_cluster: LocalCluster, on_cluster: FastPath
) -> None:
    key = "ib:m:{migrating}"
    with cluster_client(redis_cluster) as client:
        client.hset(key, "1:1", "here")
    assert await on_cluster.execute("HGETALL", key) == [b"1:1", b"here"]  # the slot table is read
    source = redis_cluster.owner(key)
    target = next(n for n in redis_cluster.primaries() if n.port != source.port)
    src, dst = redis_cluster.client(source.port), redis_cluster.client(target.port)
    slot = int(src.execute_command("CLUSTER", "KEYSLOT", key))
    src_id, dst_id = src.execute_command("CLUSTER", "MYID"), dst.execute_command("CLUSTER", "MYID")
    dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
    src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
    src.execute_command("MIGRATE", "127.0.0.1", target.port, key, 0, 5000)
    # Mid-migration: the source answers ASK; the key is read from the target after ASKING.
    assert await on_cluster.execute("HGETALL", key) == [b"1:1", b"here"]
    assert on_cluster.node_of(key) == f"127.0.0.1:{source.port}"  # ASK does not change the owner
    for node in redis_cluster.primaries():
        redis_cluster.client(node.port).execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
    # Migrated: the source answers MOVED; the fast path follows and remembers the new owner.
    assert await on_cluster.execute("HGETALL", key) == [b"1:1", b"here"]
    assert on_cluster.node_of(key) == f"127.0.0.1:{target.port}"
    assert await on_cluster.run_script(ECHO, [key], ["v"]) == [key.encode(), b"v"]


async def test_profile_store_shard_is_the_node_the_fast_path_uses(redis_cluster: LocalCluster) -> None:
    store = ProfileStore(connect(redis_cluster.url, timeout=2.0))
    try:
        await store.read_membership("shard-me")
        assert store.shard_of("shard-me") == f"127.0.0.1:{redis_cluster.owner(store.keys.membership('shard-me')).port}"
    finally:
        await store.close()
