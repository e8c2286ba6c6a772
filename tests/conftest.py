"""Shared fixtures: a real redis-server (the embedded binary) and real gRPC servers on loopback."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis

from decision.embedded_redis import EmbeddedRedis
from decision.server import RunningServer, start
from decision.settings import Settings
from decision.v1 import decision_pb2_grpc


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis() as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(redis_server: EmbeddedRedis) -> str:
    return redis_server.url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client on a freshly emptied database."""
    client = aioredis.Redis.from_url(redis_url)
    await client.flushall()
    yield client
    await client.aclose()


StartServer = Callable[..., Awaitable[RunningServer]]


@pytest.fixture
async def start_server(redis_client: aioredis.Redis, redis_url: str) -> AsyncIterator[StartServer]:
    """Start decision servers on 127.0.0.1:<free port>; all are stopped after the test."""
    running: list[RunningServer] = []

    async def _start(rules: Path | str, url: str | None = None, **overrides: object) -> RunningServer:
        options: dict[str, object] = {"host": "127.0.0.1", "port": 0, "registry_poll_interval": 0.2}
        options.update(overrides)
        settings = Settings(rules_path=str(rules), **options)  # type: ignore[arg-type]
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
