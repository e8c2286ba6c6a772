"""The circuit breaker's rules, on random sequences of calls, outcomes and clock steps."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from decision.service.breaker import BreakerBoard, BreakerState, CircuitBreaker

Step = tuple[str, float]
steps = st.lists(
    st.one_of(
        st.tuples(st.just("allow"), st.just(0.0)),
        st.tuples(st.just("success"), st.just(0.0)),
        st.tuples(st.just("failure"), st.just(0.0)),
        st.tuples(st.just("wait"), st.floats(min_value=0.0, max_value=0.5)),
    ),
    max_size=200,
)


@given(steps=steps, threshold=st.integers(min_value=1, max_value=6), interval=st.floats(min_value=0.01, max_value=0.4))
def test_open_exactly_after_consecutive_failures_and_probe_once_per_interval(
    steps: list[Step], threshold: int, interval: float
) -> None:
    now = 0.0
    breaker = CircuitBreaker(threshold, interval, clock=lambda: now)
    failures_since_success = 0
    last_probe: float | None = None
    allows = 0
    for action, amount in steps:
        if action == "wait":
            now += amount
        elif action == "success":
            breaker.record_success()
            failures_since_success = 0
        elif action == "failure":
            breaker.record_failure()
            failures_since_success += 1
        else:
            was_open = breaker.is_open
            allowed = breaker.allow()
            allows += 1
            if not was_open:
                assert allowed, "a closed breaker lets every call through"
            elif allowed:  # a probe: at most one per interval
                assert last_probe is None or now >= last_probe + interval
                last_probe = now
                assert breaker.state is BreakerState.HALF_OPEN
        # Open exactly when the last `threshold` outcomes since a success were all failures.
        assert breaker.is_open == (failures_since_success >= threshold)
        if not breaker.is_open:
            last_probe = None
    assert breaker.attempts_total + breaker.short_circuited_total == allows


def test_a_probe_is_let_through_once_the_interval_has_passed() -> None:
    now = 0.0
    changes: list[bool] = []
    breaker = CircuitBreaker(2, 0.2, clock=lambda: now, on_change=changes.append)
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    now = 0.2
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one
    breaker.record_failure()  # the probe failed: wait another interval
    assert not breaker.allow()
    now = 0.4
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert all(breaker.allow() for _ in range(10))
    assert changes == [True, False]
    assert breaker.opened_total == 1


def test_shards_have_their_own_breakers() -> None:
    now = 0.0
    changes: list[tuple[str, bool]] = []
    board = BreakerBoard(1, 0.2, clock=lambda: now, on_change=lambda shard, is_open: changes.append((shard, is_open)))
    board.for_shard("10.0.0.1:6379").record_failure()
    assert board.open_shards() == ["10.0.0.1:6379"]
    assert not board.for_shard("10.0.0.1:6379").allow()
    assert all(board.for_shard("10.0.0.2:6379").allow() for _ in range(5))  # another master: unaffected
    assert changes == [("10.0.0.1:6379", True)]
    assert (board.opened_total, board.attempts_total, board.short_circuited_total) == (1, 5, 1)
