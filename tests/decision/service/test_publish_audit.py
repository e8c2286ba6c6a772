"""A published version records its author and its changes against the version active before (real Redis)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest
import redis.asyncio as aioredis

from decision.rules.diff import RulesetChanges
from decision.service.rulesets import publish, rollback
from decision.store.connect import connect
from decision.store.control import ControlStore
from inbound_common.codecs import PublishedRuleset
from inbound_common.keys import KeySpace

V1 = b"""
version: v1
placements: [{id: banner, channels: [web], fallback: fb}]
offers:
  - {id: fb, placements: [banner]}
  - {id: sale, placements: [banner], priority: 5}
  - {id: old, placements: [banner]}
"""
V2 = (
    V1.replace(b"version: v1", b"version: v2")
    .replace(b"priority: 5", b"priority: 6")
    .replace(b"{id: old, placements: [banner]}", b"{id: new, placements: [banner]}")
)


@pytest.fixture
async def control(redis_client: aioredis.Redis, redis_url: str) -> AsyncIterator[ControlStore]:
    store = ControlStore(connect(redis_url, timeout=5.0), KeySpace())
    yield store
    await store.close()


async def test_publish_records_author_and_changes_against_the_active_version(control: ControlStore) -> None:
    first = (await publish(control, V1, "v1.yaml", author="alice")).entry
    assert (first.author, first.previous, first.changes) == ("alice", "", None)
    second = (await publish(control, V2, "v2.yaml", author="bob")).entry
    stored = await control.version("v2")
    assert stored == second and stored.author == "bob" and stored.previous == "v1"
    assert stored.changes is not None
    changes = RulesetChanges.from_json(stored.changes)
    assert changes.offers.added == ("new",) and changes.offers.removed == ("old",)
    assert dict(changes.offers.changed) == {"sale": ("priority",)}
    # Compared with the *active* version: after a rollback to v1, v3 is compared with v1.
    await rollback(control, "v1")
    v3 = V1.replace(b"version: v1", b"version: v3")
    third = (await publish(control, v3, "v3.yaml", author="carol")).entry
    assert third.previous == "v1" and third.changes is not None and not RulesetChanges.from_json(third.changes)


async def test_records_stored_before_the_audit_still_read(control: ControlStore, redis_client: aioredis.Redis) -> None:
    legacy = {"seq": 1, "sha256": "ab" * 32, "published_at": 1.5, "source": "r.yaml", "text": V1.decode()}
    await redis_client.hset(KeySpace().ruleset_versions, "v1", orjson.dumps(legacy))
    entry = await control.version("v1")
    assert entry == PublishedRuleset("v1", 1, "ab" * 32, 1.5, "r.yaml", V1.decode())
    assert (entry.author, entry.previous, entry.changes) == ("", "", None)
    assert orjson.loads(entry.encode()) == {**legacy, "author": "", "previous": "", "changes": None}
