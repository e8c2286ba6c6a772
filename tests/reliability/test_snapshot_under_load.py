"""A first snapshot of a new audience, then a replacing one, loaded while profiles are decided continuously.

Redis stays healthy throughout, so every answer must be normal (never ``degraded``), and each profile
must move between generations once: a profile seen in the new generation is never seen in the old again.
The loads run as the ``audience-sync load`` command, a separate process, as in production.

CI loads 50,000 members with 50 calls in flight (seconds); SNAPSHOT_MEMBERS=500000 ./dev test -s
tests/reliability/test_snapshot_under_load.py runs a larger form (SNAPSHOT_REDIS_TIMEOUT=0.05: the
service's default budget, for a machine not shared with the callers).
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from decision.v1 import decision_pb2_grpc
from tests.conftest import StartServer
from tests.decision.helpers import add_membership, decide_request, offers, registry_heard
from tests.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
RULES = """
placements: [{id: banner, channels: [web], max_items: 1, fallback: out}]
offers:
  - {id: out, placements: [banner], eligibility: {audiences: {all: [nobody]}}}
  - {id: in, placements: [banner], eligibility: {audiences: {all: [seg]}}}
"""
DECIDED = 1_000  # profiles decided; the first snapshot holds all of them, the replacing one the even ones
IN_FLIGHT = 50
MEMBERS = int(os.environ.get("SNAPSHOT_MEMBERS", "50000"))
# The server's Redis budget per decision. The 50 callers share the server's event loop on a small shared
# machine, where a read waits for its turn: 2 s keeps a degraded answer about Redis (a load that blocks
# it) rather than about a busy machine.
REDIS_TIMEOUT = float(os.environ.get("SNAPSHOT_REDIS_TIMEOUT", "2.0"))
DEADLINE = 2 * REDIS_TIMEOUT + 1.0  # seconds per call
POLL = 1.0  # seconds between the server's registry polls (the service's default)


@dataclass
class Observed:
    """Per profile, the states seen in order ('in' the audience, 'out'); failures and degraded answers."""

    states: dict[str, list[str]] = field(default_factory=dict)
    # Per profile, when the call of its latest normal answer was made (monotonic seconds).
    asked_at: dict[str, float] = field(default_factory=dict)
    degraded: int = 0
    failures: list[str] = field(default_factory=list)
    calls: int = 0


async def decide_continuously(port: int, seen: Observed, stop: asyncio.Event) -> None:
    """IN_FLIGHT callers; caller i decides profiles i, i + IN_FLIGHT, ... in turn (one call per profile at a time)."""

    async def caller(stub: decision_pb2_grpc.DecisionServiceStub, first: int) -> None:
        mine = [f"d{i}" for i in range(first, DECIDED, IN_FLIGHT)]
        while not stop.is_set():
            for profile in mine:
                asked = time.monotonic()
                try:
                    response = await stub.Decide(decide_request(profile, ["banner"]), timeout=DEADLINE)
                except grpc.aio.AioRpcError as exc:
                    seen.failures.append(f"{profile}: {exc.code().name}: {exc.details()}")
                    continue
                seen.calls += 1
                if response.degraded:
                    seen.degraded += 1
                    continue
                seen.states.setdefault(profile, []).append("in" if offers(response) == ["in"] else "out")
                seen.asked_at[profile] = asked

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = decision_pb2_grpc.DecisionServiceStub(channel)
        await asyncio.gather(*(caller(stub, i) for i in range(IN_FLIGHT)))


def snapshot_file(path: Path, decided: list[str], filler: int, seed: int) -> Path:
    """The decided profiles spread among filler ones, so they are written all along the load."""
    rows = decided + [f"f{seed}-{i}" for i in range(filler)]
    random.Random(seed).shuffle(rows)
    path.write_text("profile_id\n" + "\n".join(rows) + "\n", encoding="ascii")
    return path


async def audience_sync_load(redis_url: str, path: Path) -> None:
    env = {**os.environ, "AUDIENCE_SYNC_REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "audience_sync.cli", "load", "--audience", "seg", str(path)]
    done = await asyncio.to_thread(subprocess.run, command, env=env, cwd=ROOT, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()


async def every_profile_decided_since(seen: Observed, moment: float, what: str) -> None:
    """Until each decided profile has a normal answer to a call made after ``moment``: one full pass at least."""
    await eventually(lambda: all(seen.asked_at.get(f"d{i}", -math.inf) > moment for i in range(DECIDED)), what)


def moves_once(states: list[str], expected: list[str]) -> bool:
    """``states`` is ``expected`` with each step seen once or more in a row, never coming back."""
    return [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]] == expected


async def test_snapshots_of_a_new_audience_under_load_answer_normally(
    start_server: StartServer, write_rules: Callable[[str], Path], redis_url: str, tmp_path: Path
) -> None:
    server = await start_server(write_rules(RULES), redis_url, redis_timeout=REDIS_TIMEOUT, registry_poll_interval=POLL)
    await add_membership(server, "someone", "other")  # a registry with an audience already
    decided = [f"d{i}" for i in range(DECIDED)]
    first = snapshot_file(tmp_path / "first.csv", decided, MEMBERS - DECIDED, seed=1)
    second = snapshot_file(tmp_path / "second.csv", decided[::2], MEMBERS - DECIDED // 2, seed=2)

    seen = Observed()
    stop = asyncio.Event()
    deciding = asyncio.create_task(decide_continuously(server.port, seen, stop))
    reads: dict[str, int] = {}
    took: dict[str, float] = {}
    started = time.monotonic()
    try:
        await every_profile_decided_since(seen, started, "every profile seen before the first load")
        for name, path in (("first", first), ("second", second)):
            before, loading = server.store.registry_reads_total, time.monotonic()
            await audience_sync_load(redis_url, path)
            reads[name], took[name] = server.store.registry_reads_total - before, time.monotonic() - loading
            await registry_heard(server)  # the server has the registry the load switched to (pub/sub or its poll)
            await every_profile_decided_since(seen, time.monotonic(), f"every profile seen after the {name} load")
    finally:
        stop.set()
        await deciding
    print(
        f"\n{seen.calls} decisions in {time.monotonic() - started:.1f} s across two {MEMBERS}-member loads: "
        f"{seen.degraded} degraded, {len(seen.failures)} failed; registry reads during each load: {reads} "
        f"(seconds: {took}); "
        f"breaker opened {server.service.breakers.opened_total} times"
    )
    assert seen.failures == []
    assert seen.degraded == 0
    # Polls aside (one a second, however long a load takes on this machine), a first load of a new audience
    # costs servers about as many registry reads as a replacing one (the announcement): its code is known
    # before it is met. It used to be one per decision meeting it (hundreds here, against a handful).
    beyond_polls = {name: reads[name] - took[name] / POLL for name in reads}
    assert beyond_polls["first"] <= beyond_polls["second"] + 10, (reads, took)
    assert server.service.breakers.opened_total == 0
    # Never a mix: out (no generation) -> in (the first) -> out (the second, odd profiles), each step once.
    expected = {p: ["out", "in"] if i % 2 == 0 else ["out", "in", "out"] for i, p in enumerate(decided)}
    flapping = [p for p in decided if not moves_once(seen.states.get(p, []), expected[p])]
    assert flapping == [], {p: seen.states.get(p) for p in flapping[:5]}
