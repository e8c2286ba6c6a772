"""Helpers to build requests and read responses in the decision tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from typing import Any

from google.protobuf import json_format

from audience_sync.attributes import AttributeChange, AttributeTally, write_attributes
from audience_sync.deltas import write_memberships
from audience_sync.store import SyncStore
from decision.api.server import RunningServer
from decision.v1 import decision_pb2
from inbound_common.codecs import AudienceEntry
from inbound_common.keys import KeySpace
from tests.waiting import eventually


def decide_request(
    profile_id: str = "p1",
    placements: Sequence[str | tuple[str, int]] = ("banner",),
    channel: str = "web",
    context: dict[str, Any] | None = None,
    **fields: Any,
) -> decision_pb2.DecideRequest:
    request = decision_pb2.DecideRequest(profile_id=profile_id, channel=channel, **fields)
    for placement in placements:
        placement_id, max_items = (placement, 0) if isinstance(placement, str) else placement
        request.placements.add(placement_id=placement_id, max_items=max_items)
    for key, value in (context or {}).items():
        json_format.ParseDict(value, request.context[key])
    return request


def offers(response: decision_pb2.DecideResponse, placement: str | None = None) -> list[str]:
    """Offer ids proposed, in order, for one placement (or the first)."""
    for proposition in response.propositions:
        if placement is None or proposition.placement_id == placement:
            return [item.offer_id for item in proposition.items]
    raise AssertionError(f"no proposition for {placement}")


def _where(redis: RunningServer | str, keys: KeySpace | None) -> tuple[str, KeySpace | None]:
    """A URL and key space to write to: given, or a running server's (its Redis and key prefix)."""
    if isinstance(redis, str):
        return redis, keys
    assert redis.ops is not None
    return redis.ops.redis_url, keys or redis.store.keys


async def add_memberships(
    redis: RunningServer | str,
    memberships: Iterable[tuple[str, str]],
    *,
    expires_at: float | None = None,
    written_at: float | None = None,
    keys: KeySpace | None = None,
    member: bool = True,
) -> None:
    """Write (profile, audience) memberships (``member=False``: remove them) as audience_sync does: its
    atomic scripts register a new audience and publish the registry change. ``written_at``: the load's
    clock (an expiry already past when read, but not when written). Given a running server, returns once
    its registry copy has caught up (as a server hears of a load: pub/sub, off the decisions' path)."""
    rows = list(memberships)

    def write() -> None:
        store = SyncStore.from_url(*_where(redis, keys))
        try:
            clock = time.time if written_at is None else (lambda: written_at)
            expiry = None if expires_at is None else int(expires_at)
            write_memberships(store, [(p, a, member, expiry) for p, a in rows], source="tests", clock=clock)
        finally:
            store.close()

    await asyncio.to_thread(write)
    if isinstance(redis, RunningServer):
        await registry_heard(redis)


async def add_attributes(
    redis: RunningServer | str,
    profile_id: str,
    attributes: dict[str, tuple[str, object]],
    *,
    event_time: float | None = None,
    snapshot: tuple[int, int] | None = None,
    keys: KeySpace | None = None,
) -> AttributeTally:
    """Write a profile's attributes, name -> (type, value; None removes it), as audience_sync does: one
    atomic script per profile, a later event time wins. ``snapshot``: as written by that (code, generation)'s
    load (counted once it is active). Read by the next decision: no registry change to wait for."""
    when = time.time() if event_time is None else event_time
    changes = [AttributeChange(profile_id, name, kind, value, when) for name, (kind, value) in attributes.items()]

    def write() -> AttributeTally:
        store = SyncStore.from_url(*_where(redis, keys))
        try:
            return write_attributes(store, changes, snapshot=snapshot)
        finally:
            store.close()

    return await asyncio.to_thread(write)


async def registry_heard(server: RunningServer) -> None:
    """Until the server's registry copy is at the version Redis holds now."""
    store = server.store
    version = int(await store.client.get(store.keys.registry_version) or 0)
    await eventually(lambda: store.directory.version >= version, f"the server's registry copy at version {version}")


async def add_membership(redis: RunningServer | str, profile_id: str, audience_id: str, **options: Any) -> None:
    await add_memberships(redis, [(profile_id, audience_id)], **options)


async def remove_membership(redis: RunningServer | str, profile_id: str, audience_id: str) -> None:
    await add_memberships(redis, [(profile_id, audience_id)], member=False)


async def ensure_audience(redis: RunningServer | str, audience_id: str, keys: KeySpace | None = None) -> AudienceEntry:
    """The registry entry of an audience, registered by audience_sync's script if it is new."""

    def register() -> AudienceEntry:
        store = SyncStore.from_url(*_where(redis, keys))
        try:
            return store.ensure_audience(audience_id, now=time.time(), source="tests")
        finally:
            store.close()

    entry = await asyncio.to_thread(register)
    if isinstance(redis, RunningServer):
        await registry_heard(redis)
    return entry
