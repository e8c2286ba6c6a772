"""One profile as stored, field by field (``decision profile``): written by audience_sync as in production,
read from a real Redis, each membership and attribute field explained — and what counts agrees with what a
decision reads (``AudienceDirectory``, ``profile_attributes``), whatever the fields."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from audience_sync.attributes import AttributeChange, write_attributes
from audience_sync.deltas import DeltaApplier
from audience_sync.formats import InputOptions
from audience_sync.memberships import MembershipBlock
from audience_sync.records import Change
from audience_sync.report import ErrorReport
from audience_sync.snapshot import LoadOptions, SnapshotLoad
from audience_sync.store import SyncStore
from audience_sync.writes import AudienceFields
from decision.store.connect import connect
from decision.store.inspection import (
    AttributeState,
    MembershipState,
    attributes,
    memberships,
    read_stored_profile,
)
from inbound_common.codecs import AudienceDirectory, AudienceEntry, profile_attributes
from inbound_common.keys import KeySpace
from tests.audience_sync.helpers import cli, write_lines, xdm_line

NOW = time.time()


def write_as_a_load(store: SyncStore, profile_id: str, field: str) -> None:
    """The field of a loading generation in a profile's hash, written by a snapshot's writer (no expiry)."""
    block = MembershipBlock(["a"], pa.array([profile_id]), np.array([0, 1]), np.array([0]), pa.array([""]))
    with store.snapshot_writer() as writer:
        writer.write(block, [AudienceFields(field)], NOW, lambda counted: None)


@pytest.fixture
def sync_store(redis_client: aioredis.Redis, redis_url: str) -> Iterator[SyncStore]:
    store = SyncStore.from_url(redis_url)
    yield store
    store.close()


def snapshot(tmp_path: Any, capsys: Any, redis_url: str, audience: str, *profiles: str) -> None:
    path = tmp_path / f"{audience}-{len(profiles)}.csv"
    path.write_text("profile_id\n" + "".join(f"{p}\n" for p in profiles))
    status, _, err = cli(capsys, "load", str(path), "--audience", audience, "--redis-url", redis_url)
    assert status == 0, err


async def test_every_membership_field_is_named_and_its_state_said(
    sync_store: SyncStore, redis_url: str, tmp_path: Any, capsys: Any
) -> None:
    snapshot(tmp_path, capsys, redis_url, "vip", "p1", "p2")  # vip generation 1
    snapshot(tmp_path, capsys, redis_url, "vip", "p2")  # generation 2: p1's field of 1 stays until gc
    deltas = DeltaApplier(sync_store, source="tests")
    deltas.apply([Change("p1", "gold", True, int(NOW) + 3600, NOW - 60, 1)])
    earlier = DeltaApplier(sync_store, source="tests", clock=lambda: NOW - 200)  # written while still valid
    earlier.apply([Change("p1", "lapsed", True, int(NOW) - 1, NOW - 220, 2)])  # valid until a moment ago
    deltas.apply([Change("p1", "sale", True, None, NOW - 50, 3), Change("p1", "sale", False, None, NOW - 40, 4)])
    loading = sync_store.begin_snapshot("spring", now=NOW, stale_after=300, source="t", owner="tests")
    assert loading.code is not None and loading.generation is not None
    written = f"{loading.code}:{loading.generation}"
    write_as_a_load(sync_store, "p1", written)  # a load under way
    vip = sync_store.registry_state().entries["vip"]
    killed = sync_store.begin_snapshot("vip", now=NOW, stale_after=300, source="t", owner="tests")
    refused = f"{vip.code}:{killed.generation}"
    write_as_a_load(sync_store, "p1", refused)
    sync_store.abandon([f"{vip.code}:{killed.generation}"])  # refused: never switched in
    write_as_a_load(sync_store, "p1", "999:1")  # a code the registry never knew

    stored = await read_stored_profile(connect(redis_url), KeySpace(), "p1", time.time())
    states = {(m.audience_id, m.generation): m.state for m in stored.memberships}
    assert states == {
        ("gold", 1): MembershipState.MEMBER,
        ("lapsed", 1): MembershipState.EXPIRED,
        ("sale", None): MembershipState.EXITED,
        (None, loading.generation): MembershipState.PENDING,  # a new audience: known by its pending code only
        ("vip", 1): MembershipState.REPLACED,
        ("vip", killed.generation): MembershipState.NOT_APPLIED,
        (None, 1): MembershipState.UNKNOWN,
    }
    gold = next(m for m in stored.memberships if m.audience_id == "gold")
    assert (gold.expires_at, gold.active_generation) == (int(NOW) + 3600, 1)
    assert gold.last_change is not None and gold.last_change[1] == "+"
    sale = next(m for m in stored.memberships if m.audience_id == "sale")
    assert sale.last_change == (pytest.approx(NOW - 40, abs=0.001), "-")
    assert stored.keys == ("ib:m:{p1}", "ib:t:{p1}")
    assert stored.found and stored.counters == {} and stored.counters_ttl_ms is None

    p2 = await read_stored_profile(connect(redis_url), KeySpace(), "p2", time.time())
    assert [(m.audience_id, m.generation, m.state) for m in p2.memberships] == [
        ("vip", 2, MembershipState.MEMBER),
        ("vip", 1, MembershipState.REPLACED),
    ]
    nobody = await read_stored_profile(connect(redis_url), KeySpace(), "nobody", time.time())
    assert not nobody.found and nobody.memberships == () and nobody.keys == ()
    assert p2.identity_namespaces == ()  # CSV loads: the file's profile ids


async def test_the_identity_namespaces_its_audiences_were_loaded_under(sync_store: SyncStore, redis_url: str,
                                                                       tmp_path: Path) -> None:  # fmt: skip
    export = write_lines(tmp_path / "export.json", [xdm_line("c-1", {"a": "realized"})])
    options = LoadOptions(input=InputOptions(identity_namespaces=("ECID", "CRMID")))
    SnapshotLoad(sync_store, options, ErrorReport(show=0)).run([str(export)])
    for profile_id in ("c-1", "ecid-c-1"):  # one profile per identity, each saying under which
        stored = await read_stored_profile(connect(redis_url), KeySpace(), profile_id, time.time())
        assert stored.identity_namespaces == ("ECID", "CRMID")


async def test_every_attribute_field_and_the_value_decisions_read(
    sync_store: SyncStore, redis_url: str, tmp_path: Any, capsys: Any
) -> None:
    snapshot(tmp_path, capsys, redis_url, "vip", "p1")
    vip = sync_store.registry_state().entries["vip"]
    write_attributes(sync_store, [AttributeChange("p1", "tier", "string", "gold", NOW - 100)])
    write_attributes(
        sync_store,
        [
            AttributeChange("p1", "tier", "string", "silver", NOW - 10),
            AttributeChange("p1", "ltv", "number", 12.5, NOW),
        ],
        snapshot=(vip.code, vip.generation),
    )
    write_attributes(sync_store, [AttributeChange("p1", "stores", "list", ["lyon", "nice"], NOW - 5)])
    write_attributes(sync_store, [AttributeChange("p1", "nickname", "string", "Bob", NOW - 9)])
    write_attributes(sync_store, [AttributeChange("p1", "nickname", "string", None, NOW - 8)])  # removed
    write_attributes(
        sync_store, [AttributeChange("p1", "tier", "string", "bronze", NOW)], snapshot=(vip.code, vip.generation + 1)
    )  # a later load of vip, never switched in

    stored = await read_stored_profile(connect(redis_url), KeySpace(), "p1", time.time())
    found = {(a.name, a.value, a.snapshot): a.state for a in stored.attributes}
    assert found == {
        ("ltv", 12.5, ("vip", vip.code, vip.generation)): AttributeState.COUNTS,
        ("nickname", None, None): AttributeState.REMOVED,
        ("stores", ("lyon", "nice"), None): AttributeState.COUNTS,
        ("tier", "silver", ("vip", vip.code, vip.generation)): AttributeState.COUNTS,
        ("tier", "gold", None): AttributeState.OLDER,
        ("tier", "bronze", ("vip", vip.code, vip.generation + 1)): AttributeState.NOT_ACTIVE,
    }
    silver = next(a for a in stored.attributes if a.value == "silver")
    assert (silver.type, silver.event_time) == ("string", pytest.approx(NOW - 10, abs=0.001))
    assert next(a for a in stored.attributes if a.name == "nickname").type == "removed"


# -- what counts is what decisions read, for any hash --------------------------------------------------

ENTRIES = {"a": AudienceEntry("a", 1, 2), "b": AudienceEntry("b", 2, 1)}
DIRECTORY = AudienceDirectory.build(7, ENTRIES, pending=[3])
membership_fields = st.tuples(st.integers(1, 4), st.integers(1, 3)).map(lambda f: f"{f[0]}:{f[1]}".encode())
expiries = st.sampled_from([b"", str(int(NOW) - 5).encode(), str(int(NOW) + 5).encode()])
attribute_fields = st.tuples(
    st.sampled_from(["tier", "ltv"]), st.sampled_from(["", "/1:2", "/1:1", "/2:1", "/3:1"])
).map(lambda f: f"@{f[0]}{f[1]}".encode())
attribute_values = st.tuples(
    st.sampled_from(["s", "n", "-", "x"]), st.integers(1_000, 1_004), st.sampled_from(["1", "gold", ""])
).map(lambda v: f"{v[0]}{v[1]}|{v[2]}".encode())
hashes = st.dictionaries(membership_fields, expiries, max_size=6).flatmap(
    lambda m: st.dictionaries(attribute_fields, attribute_values, max_size=6).map(lambda a: {**m, **a})
)


@settings(max_examples=300)
@given(hashes)
def test_members_and_counting_attributes_are_the_decisions_own(raw: dict[bytes, bytes]) -> None:
    members, _ = DIRECTORY.audiences(raw, NOW)
    shown = memberships(raw, {}, DIRECTORY, frozenset({(3, 1)}), NOW)
    assert {m.audience_id for m in shown if m.state is MembershipState.MEMBER} == members
    assert len(shown) == sum(1 for f in raw if not f.startswith(b"@"))
    read = profile_attributes(raw, DIRECTORY.active_fields)
    counted = {a.name: a.value for a in attributes(raw, DIRECTORY) if a.state is AttributeState.COUNTS}
    assert counted == read
    assert all(list(a.state for a in attributes(raw, DIRECTORY) if a.name == n).count(AttributeState.COUNTS) <= 1
               for n in ("tier", "ltv"))  # fmt: skip
