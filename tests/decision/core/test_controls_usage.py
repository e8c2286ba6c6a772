"""``DeliveryControls.usage``: what ``decision profile`` shows of caps, suppressions and policies. Pure, no network.

Its verdict is the decision's (``blocked``, ``policy_reached``) for any counters, and the moment it
gives for the end of a reached control is exact: reached 1 ms before, free at that moment.
"""

from __future__ import annotations

from datetime import datetime

from hypothesis import given
from hypothesis import strategies as st

from decision.core.controls import CapReached, DeliveryControls, Suppressed, Usage
from decision.core.counters import offer_counter_field, policy_counter_field
from decision.rules.loader import parse
from decision.rules.types import DISMISS, Ruleset

NOW_MS = int(datetime.fromisoformat("2026-03-29T01:30:00+01:00").timestamp() * 1000)  # Paris, the night of DST
HOUR_MS = 3_600_000

PERIODS = ["24h", "2h", "7d", "day", "week", "month", "lifetime"]


def ruleset(period: str, limit: int, dismissals: int, suppress_for: str, within: str | None) -> Ruleset:
    within_text = f", within: {within}" if within else ""
    text = f"""
version: v1
settings: {{time_zone: Europe/Paris}}
placements: [{{id: banner, channels: [web], fallback: fb}}]
offers:
  - {{id: fb, placements: [banner], priority: -1}}
  - {{id: capped, placements: [banner], caps: [{{max: {limit}, period: {period}}}]}}
  - id: closable
    placements: [banner]
    suppress: {{after_dismissals: {dismissals}, for: {suppress_for}{within_text}}}
contact_policies:
  - {{id: banner_policy, placements: [banner], max: {limit}, period: {period}}}
"""
    parsed, problems = parse(text.encode(), "r.yaml")
    assert parsed is not None, problems
    return parsed


times = st.lists(st.integers(NOW_MS - 40 * 86_400_000, NOW_MS), max_size=8).map(lambda t: tuple(sorted(t)))


@given(
    period=st.sampled_from(PERIODS),
    limit=st.integers(1, 4),
    dismissals=st.integers(1, 3),
    suppress_for=st.sampled_from(["1h", "2d", "30d"]),
    within=st.sampled_from([None, "1d", "14d"]),
    capped_times=times,
    dismiss_times=times,
    later_ms=st.integers(0, 3 * HOUR_MS),
)
def test_usage_says_what_the_decision_decides_and_when_it_ends(
    period: str,
    limit: int,
    dismissals: int,
    suppress_for: str,
    within: str | None,
    capped_times: tuple[int, ...],
    dismiss_times: tuple[int, ...],
    later_ms: int,
) -> None:
    controls = DeliveryControls.build(ruleset(period, limit, dismissals, suppress_for, within))
    counters = {
        offer_counter_field("capped", "decision"): capped_times,
        offer_counter_field("closable", DISMISS): dismiss_times,
        policy_counter_field("banner_policy"): capped_times,
    }
    now = NOW_MS + later_ms

    def used(at: int) -> dict[str, Usage]:
        return {u.offer_id or u.field: u for u in controls.usage(counters, at)}

    found = used(now)
    assert set(found) == {"capped", "closable", policy_counter_field("banner_policy")}
    cap, suppression, policy = found["capped"], found["closable"], found[policy_counter_field("banner_policy")]
    blocked = controls.blocked("capped", counters, now)
    assert cap.reached == isinstance(blocked, CapReached)
    assert (cap.count, cap.limit) == ((blocked.count, blocked.cap.max) if isinstance(blocked, CapReached) else
                                      (cap.count, limit))  # fmt: skip
    assert cap.count <= len(capped_times) and cap.since_ms <= now
    suppressed = controls.blocked("closable", counters, now)
    assert suppression.reached == isinstance(suppressed, Suppressed)
    if isinstance(suppressed, Suppressed):
        assert suppression.count == suppressed.count
    reached = controls.policy_reached("web", "banner", counters, now)
    assert policy.reached == (reached is not None)
    if reached is not None:
        assert policy.count == reached.count
    for key, usage in found.items():
        if not usage.reached:
            assert usage.until_ms is None
            continue
        if usage.until_ms is None:  # a lifetime cap: for good
            assert period == "lifetime"
            assert used(now + 400 * 86_400_000)[key].reached
            continue
        assert usage.until_ms > now
        assert used(usage.until_ms - 1)[key].reached, (key, usage)
        assert not used(usage.until_ms)[key].reached, (key, usage)


def test_total_caps_are_not_a_profiles() -> None:
    text = """
version: v1
placements: [{id: banner, channels: [web], fallback: fb}]
offers:
  - {id: fb, placements: [banner]}
  - {id: budget, placements: [banner], caps: [{max: 100, scope: total, period: day}, {max: 2, period: day}]}
"""
    parsed, problems = parse(text.encode(), "r.yaml")
    assert parsed is not None, problems
    usage = DeliveryControls.build(parsed).usage({}, NOW_MS)
    assert [(u.offer_id, u.limit, u.count, u.reached) for u in usage] == [("budget", 2, 0, False)]
