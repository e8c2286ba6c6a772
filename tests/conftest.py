"""Shared fixtures: a real redis-server (the embedded binary) and real gRPC servers on loopback."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import cast

import grpc
import hypothesis
import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from decision.api.server import RunningServer, start
from decision.settings import Settings
from decision.store.embedded import EmbeddedRedis
from decision.v1 import decision_pb2_grpc
from tests.certs import TestCertificates, make_certificates
from tests.redis_cluster import LocalCluster

# Hypothesis's deadline per example (200 ms by default) is a timed assertion: on a shared, busy machine it fails
# property tests that are right (tests/decision/core/test_planning.py took 447 ms once, 9 ms when rerun).
hypothesis.settings.register_profile("suite", deadline=None)
hypothesis.settings.load_profile("suite")

# TEST_REDIS=cluster runs the suites against a Redis Cluster on loopback instead of one redis-server.
ON_CLUSTER = os.environ.get("TEST_REDIS", "single") == "cluster"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
def own_redis() -> Iterator[EmbeddedRedis]:
    """A redis-server of the test's own: for what would disturb the others (frozen, made full, refusing writes)."""
    with EmbeddedRedis() as server:
        yield server


def limit_memory(url: str, maxmemory: int) -> None:
    """Redis full beyond ``maxmemory`` bytes (0: no limit), with ``noeviction``: a write that needs memory is
    then refused ("OOM command not allowed"), the way a full Redis refuses it; deletions still pass."""
    client = redis.Redis.from_url(url)
    try:
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", str(maxmemory))
    finally:
        client.close()


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> TestCertificates:
    """A CA, a server certificate for 127.0.0.1, client certificates (tests/certs.py)."""
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalCluster]:
    """A Redis Cluster on loopback: 3 masters, 3 replicas (about 3 s to start)."""
    with LocalCluster() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> str:
    """Where the suites' servers read: one redis-server, or with TEST_REDIS=cluster a Redis Cluster."""
    if ON_CLUSTER:
        return cast(LocalCluster, request.getfixturevalue("redis_cluster")).url
    return cast(EmbeddedRedis, request.getfixturevalue("redis_server")).url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client on a freshly emptied database (on a Cluster: a cluster client, every primary emptied)."""
    if ON_CLUSTER:
        cluster = RedisCluster.from_url(redis_url.replace("redis+cluster://", "redis://", 1))
        await cluster.flushall(target_nodes=RedisCluster.PRIMARIES)
        yield cast(aioredis.Redis, cluster)  # the commands the tests use exist on both
        await cluster.aclose()
        return
    client = aioredis.Redis.from_url(redis_url)
    await client.flushall()
    yield client
    await client.aclose()


StartServer = Callable[..., Awaitable[RunningServer]]
PATIENT_REDIS_TIMEOUT = 5.0  # seconds: what test servers give a Redis read unless a test says otherwise


@pytest.fixture
async def start_server(redis_client: aioredis.Redis, redis_url: str) -> AsyncIterator[StartServer]:
    """Start decision servers on 127.0.0.1:<free port>; all are stopped after the test."""
    running: list[RunningServer] = []

    async def _start(rules: Path | str | None, url: str | None = None, **overrides: object) -> RunningServer:
        """``rules`` None: the server takes the ruleset published to Redis and follows it."""
        options: dict[str, object] = {
            "host": "127.0.0.1",
            "port": 0,
            "registry_poll_interval": 0.2,
            # The service's budget for a Redis read is 50 ms: on a busy machine a read can take longer, and
            # an answer the test expects normal would come back degraded. Tests of budgets, deadlines and
            # faults set their own.
            "redis_timeout": PATIENT_REDIS_TIMEOUT,
        }
        options.update(overrides)
        settings = Settings(rules_path=None if rules is None else str(rules), **options)  # type: ignore[arg-type]
        server = await start(settings, url or redis_url)
        running.append(server)
        return server

    yield _start
    for server in running:
        with contextlib.suppress(Exception):
            await server.stop(grace=0.5)


@pytest.fixture
def write_rules(tmp_path: Path) -> Callable[[str], Path]:
    def _write(text: str, name: str = "rules.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return _write


@contextlib.asynccontextmanager
async def decision_stub(port: int) -> AsyncIterator[decision_pb2_grpc.DecisionServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield decision_pb2_grpc.DecisionServiceStub(channel)
