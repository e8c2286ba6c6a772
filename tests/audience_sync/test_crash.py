"""Crash test: SIGKILL a snapshot load at several points while decisions read; old or new, never a mix.

The load reads its input from a pipe, so the test decides how far it gets
before the kill: nothing written yet, half written, everything written but
not switched (the input is not closed yet), and "input closed" (the switch
may or may not have happened). A reader decodes memberships the way the
decision service does (decision.store.profiles.ProfileStore) all along; every answer
must be the profile's old audiences or its new ones. A rerun then converges
to exactly the new snapshot, and gc leaves nothing but active generations.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from audience_sync.store import SyncStore
from decision.store.connect import connect
from decision.store.profiles import ProfileStore
from tests.audience_sync.helpers import ROOT, seen_by_readers, write_lines
from tests.waiting import eventually

PROFILES = 3000
BATCH = 100


def old_set(i: int) -> set[str]:
    return {a for a, member in (("a", i % 2 == 0), ("b", i % 3 == 0)) if member}


def new_set(i: int) -> set[str]:
    return {a for a, member in (("a", i % 2 == 1), ("b", i % 3 != 0)) if member}


def rows(member_of: Callable[[int], set[str]]) -> list[str]:
    return [f"p{i},{a}" for i in range(PROFILES) for a in sorted(member_of(i))]


async def spawn_load(redis_url: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "audience_sync.cli", "load", "-", "--format", "csv",
        "--audience", "a", "--audience", "b", "--batch-size", str(BATCH), "--redis-url", redis_url,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


class Reader:
    """Decides like the server: registry, then the profile's hash; checks every answer."""

    def __init__(self, redis_url: str) -> None:
        self.store = ProfileStore(connect(redis_url, timeout=5.0))
        self.reads = 0
        self.mixed: list[tuple[str, frozenset[str]]] = []
        self.stopping = False

    async def run(self) -> None:
        rng = random.Random(7)
        while not self.stopping:
            await self.store.refresh_directory()
            i = rng.randrange(PROFILES)
            seen = await self.store.audiences(f"p{i}")
            if seen not in (frozenset(old_set(i)), frozenset(new_set(i))):
                self.mixed.append((f"p{i}", seen))
            self.reads += 1
            await asyncio.sleep(0)


@pytest.mark.timeout(120)
async def test_killing_a_snapshot_load_never_shows_a_mix(redis_url: str, tmp_path: Path, store: SyncStore) -> None:
    from audience_sync.cli.main import main

    header = "profile_id,audience_id"
    old_file = write_lines(tmp_path / "old.csv", [header, *rows(old_set)])
    assert main(["load", str(old_file), "--redis-url", redis_url]) == 0
    assert seen_by_readers(store) == {f"p{i}": old_set(i) for i in range(PROFILES) if old_set(i)}
    new_rows = rows(new_set)
    half = len(new_rows) // 2 // BATCH * BATCH
    full = len(new_rows) // BATCH * BATCH

    async def pending_fields() -> dict[str, str]:
        return {p.audience_id: p.field for p in store.registry_state().pending}

    def written(row: str) -> Callable[[], Awaitable[bool]]:
        profile, audience = row.split(",")

        async def check() -> bool:
            fields = await pending_fields()
            return audience in fields and bool(store.client.hexists(store.keys.membership(profile), fields[audience]))

        return check

    reader = Reader(redis_url)
    reading = asyncio.create_task(reader.run())
    outcomes = []
    try:
        for fed, close in ((0, False), (half, False), (full, False), (len(new_rows), True)):
            process = await spawn_load(redis_url)
            assert process.stdin is not None
            process.stdin.write((header + "\n").encode())
            await process.stdin.drain()

            async def began() -> bool:
                return len(await pending_fields()) == 2

            await eventually(began, "the load to begin")
            if fed:
                process.stdin.write("".join(row + "\n" for row in new_rows[:fed]).encode())
                await process.stdin.drain()
                await eventually(written(new_rows[fed - 1]), f"{fed} rows to be written")
            if close:
                process.stdin.write("".join(row + "\n" for row in new_rows[fed:]).encode())
                process.stdin.close()
                await asyncio.sleep(random.Random(fed).uniform(0.0, 0.3))
            process.send_signal(signal.SIGKILL)
            await process.wait()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                process.stdin.close()
            state = seen_by_readers(store)
            old = {f"p{i}": old_set(i) for i in range(PROFILES) if old_set(i)}
            new = {f"p{i}": new_set(i) for i in range(PROFILES) if new_set(i)}
            assert state in (old, new), f"killed after {fed} rows: a mix of old and new"
            outcomes.append("new" if state == new else "old")
    finally:
        reader.stopping = True
        await reading
        await reader.store.close()
    assert outcomes[:3] == ["old", "old", "old"]  # never switched before the whole input was read
    print(f"{reader.reads} reads, outcomes {outcomes}")
    assert reader.reads > 100 and reader.mixed == []

    # A rerun converges to exactly the new snapshot (the dead loads' generations are taken over).
    new_file = write_lines(tmp_path / "new.csv", [header, *new_rows])
    assert main(["load", str(new_file), "--redis-url", redis_url]) == 0
    assert seen_by_readers(store) == {f"p{i}": new_set(i) for i in range(PROFILES) if new_set(i)}
    # gc then leaves only the active generations (and nothing of the killed loads).
    assert main(["gc", "--grace", "0", "--stale-after", "0", "--redis-url", redis_url]) == 0
    active = {f"{e.code}:{e.generation}".encode() for e in store.registry_state().entries.values()}
    for key in store.scan_membership_keys(count=1000):
        assert set(store.client.hkeys(key)) <= active, key
    assert store.registry_state().pending == []
