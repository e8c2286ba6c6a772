"""select.lua (atomic, in Redis) chooses and counts exactly what planning.fill (Python) chooses and counts."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from decision.core.controls import Check, DeliveryControls, parse_times
from decision.core.planning import Candidate, Plan, Slot, fill
from decision.rules.types import Location, Offer, Placement
from decision.service.reservations import select_payload
from decision.store import scripts
from tests.redis_cluster import node_client_for

NOW = 1_780_000_000_000
FIELDS = ["o|a|decision", "o|b|decision", "p|web", "p|banner"]
KEYS = ["a", "b", "c", "d"]
HERE = Location("t.yaml", 1)
PLACEMENT = Placement("banner", frozenset({"web"}), 3, "fb", HERE)


def offer(key: str) -> Offer:
    return Offer(key, ("banner",), 0, {}, "{}", (), 0, HERE)


checks = st.lists(
    st.builds(Check, st.sampled_from(FIELDS), st.integers(1, 4), st.integers(NOW - 10_000, NOW)), max_size=3
)
field_lists = st.lists(st.sampled_from(FIELDS), max_size=2, unique=True)
candidates = st.builds(
    lambda key, c, f, exempt: Candidate(
        offer(key), key, "r", None, "{}", checks=tuple(c), fields=tuple(f), exempt=exempt
    ),
    st.sampled_from(KEYS),
    checks,
    field_lists,
    st.booleans(),
)
slots = st.builds(
    lambda limit, c, f, cands: Slot(PLACEMENT, limit, tuple(cands), tuple(c), tuple(f)),
    st.integers(1, 3),
    checks,
    field_lists,
    st.lists(candidates, max_size=5),
)
plans = st.builds(lambda s, dup: Plan(tuple(s), dup, NOW), st.lists(slots, min_size=1, max_size=3), st.booleans())
keeps = st.fixed_dictionaries({name: st.integers(1, 4) for name in FIELDS})


@st.composite
def counters(draw: st.DrawFn, keep: dict[str, int]) -> dict[str, tuple[int, ...]]:
    result = {}
    for name in FIELDS:
        times = draw(st.lists(st.integers(NOW - 12_000, NOW), max_size=keep[name]))
        if times:
            result[name] = tuple(sorted(times))
    return result


@pytest.fixture(scope="module")
def client(redis_url: str) -> Iterator[redis.Redis]:
    """The node serving the test keys (their tags {p} and {q} are on one node of a Cluster or another)."""
    sync = node_client_for(redis_url, "{p}")
    yield sync
    sync.close()


@settings(
    max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=plans, keep=keeps, data=st.data())
def test_lua_and_python_choose_and_count_alike(
    client: redis.Redis, plan: Plan, keep: dict[str, int], data: st.DataObject
) -> None:
    before = data.draw(counters(keep))
    key = "test:c:{p}"
    client.delete(key)
    if before:
        client.hset(key, mapping={name: ",".join(map(str, times)) for name, times in before.items()})
    controls = DeliveryControls(keep=dict(keep), retention_ms=60_000)
    reply = client.eval(scripts.source("select"), 1, key, select_payload(plan, controls, []))
    expected = fill(plan, before)
    assert tuple(tuple(int(i) for i in taken) for taken in reply) == expected
    # The counters now hold the times before plus one `now` per addition, trimmed to the newest `keep`.
    added = plan.fields_of(expected)
    after = {name.decode(): parse_times(value) for name, value in client.hgetall(key).items()}
    for name in FIELDS:
        want = sorted([*before.get(name, ()), *[NOW] * added.count(name)])[-keep[name] :]
        assert after.get(name, ()) == tuple(want), name


def test_release_gives_back_one_time_per_field(client: redis.Redis) -> None:
    key = "test:c:{p}:release"
    client.delete(key)
    client.hset(key, mapping={"p|web": f"{NOW - 5},{NOW},{NOW}", "o|a|decision": str(NOW)})
    plan = Plan((Slot(PLACEMENT, 1, ()),), False, NOW)
    controls = DeliveryControls(keep={"p|web": 4, "o|a|decision": 4}, retention_ms=60_000)
    client.eval(scripts.source("select"), 1, key, select_payload(plan, controls, ["p|web", "o|a|decision"]))
    assert client.hgetall(key) == {b"p|web": f"{NOW - 5},{NOW}".encode()}
    assert 0 < client.pttl(key) <= 60_000
