"""A real receiver on loopback, writing to the session's real redis-server, and an aiohttp client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from audience_sync.receive.auth import ENV_TOKENS, Access, load_clients
from audience_sync.receive.server import ReceiverConfig, RunningReceiver, start_receiver
from inbound_common.secret_files import load_tokens

PUSH_TOKEN = "push-token-0123456789"
DECIDE_ONLY_TOKEN = "decide-token-0123456789"
CLIENT_ID, CLIENT_SECRET = "aep-destination", "s3cret-s3cret-s3cret"
StartReceiver = Callable[..., Awaitable[RunningReceiver]]


@pytest.fixture
def access(tmp_path: Path) -> Access:
    clients = tmp_path / "clients"
    clients.write_text(f"# the AEP destination\n{CLIENT_ID} {CLIENT_SECRET}\n")
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{PUSH_TOKEN} audiences\n{DECIDE_ONLY_TOKEN} decide,events\n")
    return Access(load_tokens(str(tokens), {}, ENV_TOKENS), load_clients(str(clients)), token_ttl=60)


@pytest.fixture
async def start(redis_url: str, access: Access) -> AsyncIterator[StartReceiver]:
    running: list[RunningReceiver] = []

    async def _start(**overrides: object) -> RunningReceiver:
        options: dict[str, object] = {"redis_url": redis_url, "access": access}
        options.update(overrides)
        receiver = await start_receiver(ReceiverConfig(**options))  # type: ignore[arg-type]
        running.append(receiver)
        return receiver

    yield _start
    for receiver in running:
        with contextlib.suppress(Exception):
            await receiver.stop()


@pytest.fixture
async def receiver(start: StartReceiver, store: object) -> RunningReceiver:
    """A receiver on an emptied Redis (``store`` flushes it)."""
    return await start()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


AUTH = {"Authorization": f"Bearer {PUSH_TOKEN}"}
