"""Fixtures of the reliability tests: redis-server processes a test stops, kills, freezes and restarts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from decision.store.embedded import EmbeddedRedis


def persistent_redis(port: int, directory: Path) -> EmbeddedRedis:
    """A redis-server on a fixed port whose data survives a restart, even a SIGKILL.

    Append-only file in ``directory``, fsynced before every reply (``appendfsync always``): what
    Redis acknowledged is on disk. ``everysec`` (Redis's default) may lose the last second.
    """
    args = ["--dir", str(directory), "--appendonly", "yes", "--appendfsync", "always"]
    return EmbeddedRedis(port=port, extra_args=args)


@pytest.fixture
def fault_redis(tmp_path: Path) -> Iterator[list[EmbeddedRedis]]:
    """The test's redis-server processes (the list grows as it restarts them); all stopped at the end."""
    servers: list[EmbeddedRedis] = []
    yield servers
    for server in servers:
        server.stop()
