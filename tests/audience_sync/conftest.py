"""Fixtures for audience_sync: a SyncStore on the session's real redis-server, emptied per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from audience_sync.store import SyncStore


@pytest.fixture
def store(redis_url: str) -> Iterator[SyncStore]:
    sync_store = SyncStore.from_url(redis_url)
    sync_store.client.flushall()
    yield sync_store
    sync_store.close()
