"""Helpers for the tests of caps, contact policies, experiments and feedback events."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf import timestamp_pb2

from decision.api.server import RunningServer
from decision.v1 import decision_pb2, decision_pb2_grpc
from tests.decision.core.profiles import HEAD, moment
from tests.decision.helpers import decide_request

# Servers of these tests wait for Redis long enough never to answer degraded on a loaded machine:
# the tests check what caps decide, not deadlines (tests/decision/api/test_server.py does).
PATIENT = {"redis_timeout": 5.0}


def ruleset(offers: str, *, head: str = HEAD, settings: str = "", policies: str = "") -> str:
    return settings + head + offers + policies


class Clock:
    """An injected clock: decisions and events see the time the test sets, never the wall clock."""

    def __init__(self, start: float | str) -> None:
        self.now = moment(start)

    def __call__(self) -> float:
        return float(self.now)

    def set(self, at: float | str) -> None:
        self.now = moment(at)

    def advance(self, seconds: float) -> None:
        self.now += seconds


def with_clock(server: RunningServer, clock: Clock) -> RunningServer:
    server.service.clock = clock
    return server


async def decide(
    stub: decision_pb2_grpc.DecisionServiceStub, profile: str = "p1", placements: Iterable[str] = ("banner",), **kw: Any
) -> decision_pb2.DecideResponse:
    return await stub.Decide(decide_request(profile_id=profile, placements=tuple(placements), **kw), timeout=10)


def first(response: decision_pb2.DecideResponse, placement: int = 0) -> decision_pb2.Item:
    return response.propositions[placement].items[0]


def event(
    item: decision_pb2.Item,
    event_id: str,
    kind: int = decision_pb2.EVENT_TYPE_IMPRESSION,
    *,
    at: float,
    profile: str = "p1",
    custom_type: str = "",
) -> decision_pb2.Event:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(at * 1e9))
    return decision_pb2.Event(
        event_id=event_id,
        profile_id=profile,
        type=kind,  # type: ignore[arg-type]
        custom_type=custom_type,
        tracking_token=item.tracking_token,
        timestamp=stamp,
    )


async def record(stub: decision_pb2_grpc.DecisionServiceStub, *events: decision_pb2.Event) -> list[tuple[str, str]]:
    """(outcome name without prefix, reason) per event."""
    response = await stub.RecordEvents(decision_pb2.RecordEventsRequest(events=list(events)), timeout=10)
    return [
        (decision_pb2.EventOutcome.Name(r.outcome).removeprefix("EVENT_OUTCOME_").lower(), r.reason)
        for r in response.results
    ]


def no_offer_nor_token_twice(response: decision_pb2.DecideResponse) -> None:
    """No proposition shows an offer or a tracking token twice."""
    for proposition in response.propositions:
        shown = [item.offer_id for item in proposition.items]
        tokens = [item.tracking_token for item in proposition.items]
        assert len(shown) == len(set(shown)), shown
        assert len(tokens) == len(set(tokens)), shown


Stored = dict[bytes, tuple[bytes, int]]


async def stored(client: Any, match: str = "*") -> Stored:
    """Every key of the database (or those matching ``match``): its DUMP (value and type, byte for byte) and PTTL."""
    found: Stored = {}
    async for key in client.scan_iter(match=match, count=1000):
        found[key] = (await client.dump(key), await client.pttl(key))
    return found


def nothing_written(before: Stored, after: Stored) -> None:
    """The same keys with the same DUMPs; no expiry set, removed or pushed back (a PTTL only runs down)."""
    assert sorted(after) == sorted(before), set(after) ^ set(before)
    for key, (dump, ttl) in before.items():
        assert after[key][0] == dump, key
        assert (after[key][1] < 0) == (ttl < 0) and after[key][1] <= ttl, (key, ttl, after[key][1])
