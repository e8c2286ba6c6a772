"""Incremental changes: realized/exited on the active generation, event-time ordering, and snapshots in flight."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audience_sync.attributes import AttributeChange, write_attributes
from audience_sync.deltas import DeltaApplier, event_wins
from audience_sync.formats import InputOptions
from audience_sync.records import Change
from audience_sync.report import ErrorReport
from audience_sync.snapshot import LoadOptions, SnapshotLoad
from audience_sync.store import SyncStore
from tests.audience_sync.helpers import cli, dump, seen_by_readers, spawn, write_lines, xdm_line
from tests.waiting import DEADLINE, eventually_sync


def change(profile: str, audience: str, member: bool, at: float | None = None, until: int | None = None) -> Change:
    return Change(profile, audience, member, until, at, 0)


def test_realized_and_exited_on_top_of_a_snapshot(store: SyncStore, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "vip.csv", ["profile_id", "p1", "p2"])
    options = LoadOptions(input=InputOptions(audience="vip"), audiences=frozenset(["vip"]))
    SnapshotLoad(store, options, ErrorReport(show=0)).run([str(path)])
    applier = DeltaApplier(store, source="test")
    tally = applier.apply([change("p3", "vip", True), change("p1", "vip", False), change("p2", "vip", True)])
    assert (tally.added, tally.removed, tally.unchanged) == (1, 1, 1)
    assert seen_by_readers(store) == {"p2": {"vip"}, "p3": {"vip"}}
    assert store.registry_state().entries["vip"].members == 2
    # A new audience is registered on its first change.
    applier.apply([change("p1", "new", True, until=int(time.time()) + 60)])
    assert seen_by_readers(store)["p1"] == {"new"}


def test_a_membership_whose_valid_until_passed_is_removed(store: SyncStore) -> None:
    applier = DeltaApplier(store, source="test")
    applier.apply([change("p1", "a", True)])
    tally = applier.apply([change("p1", "a", True, until=int(time.time()) - 1)])
    assert (tally.expired, tally.removed) == (1, 1)
    assert seen_by_readers(store) == {}


def test_an_older_event_does_not_undo_a_newer_one(store: SyncStore) -> None:
    applier = DeltaApplier(store, source="test")
    applier.apply([change("p1", "a", True, at=200.0)])
    tally = applier.apply([change("p1", "a", False, at=100.0)])  # late delivery of an older exit
    assert tally.stale == 1
    assert seen_by_readers(store) == {"p1": {"a"}}
    applier.apply([change("p1", "a", False, at=300.0)])
    assert seen_by_readers(store) == {}


def test_a_change_during_a_snapshot_load_survives_its_cutover(store: SyncStore, tmp_path: Path, redis_url: str) -> None:
    """The change is written to the active generation and to the one being loaded."""
    first = write_lines(tmp_path / "a.csv", ["profile_id", "p1"])
    options = LoadOptions(input=InputOptions(audience="a"), audiences=frozenset(["a"]))
    SnapshotLoad(store, options, ErrorReport(show=0)).run([str(first)])
    # A second snapshot reads its input from a pipe: it is loading until the pipe is closed.
    load = spawn("load", "-", "--format", "csv", "--audience", "a", redis_url=redis_url, stdin=subprocess.PIPE)
    assert load.stdin is not None
    load.stdin.write(b"profile_id\np1\np2\n")
    load.stdin.flush()
    eventually_sync(lambda: store.registry_state().pending, "the load started")
    DeltaApplier(store, source="test").apply([change("p9", "a", True)])
    assert seen_by_readers(store) == {"p1": {"a"}, "p9": {"a"}}
    load.stdin.close()
    assert load.wait(timeout=DEADLINE) == 0, load.stderr.read() if load.stderr else ""
    assert seen_by_readers(store) == {"p1": {"a"}, "p2": {"a"}, "p9": {"a"}}


ops = st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=ops, order=st.randoms(use_true_random=False))
def test_delivery_order_does_not_matter(store: SyncStore, events: list[tuple[int, bool]], order: Any) -> None:
    """Any order of delivery, with repeats, ends in the state of the winning event (APPLY_CHANGES = event_wins)."""
    store.client.flushall()
    delivered = events + events[: len(events) // 2]  # at-least-once: some come twice
    order.shuffle(delivered)
    applier = DeltaApplier(store, source="test")
    for start in range(0, len(delivered), 3):
        applier.apply([change("p", "a", member, at=float(t)) for t, member in delivered[start : start + 3]])
    stamp: str | None = None
    for t, member in delivered:
        if event_wins(stamp, t * 1000, "+" if member else "-"):
            stamp = f"{t * 1000}{'+' if member else '-'}"
    latest = max(t for t, _ in events)
    expected_member = not any(t == latest and not member for t, member in events)
    assert (seen_by_readers(store) == {"p": {"a"}}) is expected_member
    assert stamp is not None and stamp.endswith("+" if expected_member else "-")


pushes = st.lists(
    st.tuples(
        st.lists(st.tuples(st.sampled_from(["p", "q"]), st.sampled_from(["a", "b"]), st.booleans(), st.integers(0, 4))),
        st.lists(st.tuples(st.sampled_from(["p", "q", "r"]), st.sampled_from(["x", "y"]), st.integers(0, 4))),
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(groups=pushes)
def test_memberships_and_attributes_in_one_script_as_in_two(
    store: SyncStore, groups: list[tuple[list[tuple[str, str, bool, int]], list[tuple[str, str, int]]]]
) -> None:
    """APPLY_PROFILE (one atomic write per profile) ends in the state and tallies of the two scripts one after
    the other: the same event-time rules, stale skipped, removals kept as markers."""
    changes = [[change(p, a, member, at=float(t)) for p, a, member, t in c] for c, _ in groups]
    attributes = [
        [AttributeChange(p, name, "number", None if t == 3 else t, float(t)) for p, name, t in attrs]
        for _, attrs in groups
    ]
    outcomes = []
    for together in (True, False):
        store.client.flushall()
        applier = DeltaApplier(store, source="test", clock=lambda: 1000.0)
        if together:
            tallies = applier.apply_each(changes, attributes)
        else:
            memberships = applier.apply_each(changes)
            tallies = [(m, write_attributes(store, a)) for (m, _), a in zip(memberships, attributes, strict=True)]
        outcomes.append((tallies, dump(store)))
    assert outcomes[0] == outcomes[1]


def test_apply_command_threshold_and_dry_run(store: SyncStore, tmp_path: Path, capsys: Any, redis_url: str) -> None:
    deltas = write_lines(
        tmp_path / "deltas.json",
        [xdm_line("c-1", {"a": "realized", "b": "exited"}), xdm_line("c-2", {"a": "realized"}), "{oops"],
    )
    url = ["--redis-url", redis_url, "--identity-namespace", "CRMID"]
    status, _, err = cli(capsys, "apply", str(deltas), *url)
    assert status == 1 and "nothing applied" in err and "deltas.json:3: bad JSON" in err
    assert dump(store) == {}
    before = dump(store)
    status, out, _ = cli(capsys, "apply", str(deltas), *url, "--max-bad-ratio", "50%", "--dry-run")
    assert status == 0 and "dry run: nothing written" in out
    assert dump(store) == before
    predicted = out.splitlines()[:3]
    status, out, _ = cli(capsys, "apply", str(deltas), *url, "--max-bad-ratio", "0.5")
    assert status == 0
    assert out.splitlines()[:3] == predicted
    assert seen_by_readers(store) == {"c-1": {"a"}, "c-2": {"a"}}


@pytest.mark.parametrize("member", [True, False])
def test_event_wins_matches_the_script(store: SyncStore, member: bool) -> None:
    """Equal times: an exit wins over a qualification whatever the order; same op again is a no-op."""
    applier = DeltaApplier(store, source="test")
    applier.apply([change("p", "a", member, at=5.0)])
    applier.apply([change("p", "a", not member, at=5.0)])
    assert seen_by_readers(store) == {}
    assert event_wins(None, 5000, "+") and not event_wins("5000-", 5000, "+") and event_wins("5000+", 5000, "-")
