"""The words of one stored profile (``decision profile``, the console's Profile page): memberships, attributes,
counters. Words only: what counts is decided by the readers (decision.store.inspection, decision.service.inspection).
What Redis holds (ids, names, values) is ``terminal_safe``: a control character is written as its escape, never
obeyed."""

from __future__ import annotations

import orjson

from decision.core.controls import Usage, period_text
from decision.present.text import terminal_safe
from decision.rules.types import Cap, ContactPolicy, utc_iso
from decision.store.inspection import Attribute, Membership, MembershipState


def namespaces_text(namespaces: tuple[str, ...]) -> str:
    """Which identities a profile's audiences were loaded under (audience-sync's ``--identity-namespace``)."""
    if namespaces:
        listed = terminal_safe(", ".join(namespaces))
        return f"under each of the identity namespaces {listed} (its audiences' snapshot loads)"
    return "under the primary identity of the exports, or the files' profile ids (no --identity-namespace recorded)"


def audience_text(m: Membership) -> str:
    if m.audience_id is None:
        return f"(code {m.code})"
    return terminal_safe(f"{m.audience_id} ({m.name})" if m.name and m.name != m.audience_id else m.audience_id)


def generation_text(m: Membership) -> str:
    if m.generation is None:
        return "-"
    if m.active_generation is None or m.generation == m.active_generation:
        return str(m.generation)
    return f"{m.generation} (active {m.active_generation})"


def membership_state_text(m: Membership) -> str:
    if m.state is MembershipState.MEMBER and m.expires_at is not None:
        return f"member until {utc_iso(m.expires_at, 'seconds')}"
    if m.state is MembershipState.EXPIRED and m.expires_at is not None:
        return f"expired at {utc_iso(m.expires_at, 'seconds')}"
    return {
        MembershipState.PENDING: "pending: a snapshot being loaded, counts from its cutover",
        MembershipState.REPLACED: "replaced by a later snapshot (gc removes it)",
        MembershipState.NOT_APPLIED: "of a snapshot never switched in (gc removes it)",
        MembershipState.UNKNOWN: "unknown to the registry: does not count",
    }.get(m.state, m.state.value)


def change_text(m: Membership) -> str:
    if m.last_change is None:
        return "-"
    moment, op = m.last_change
    return f"{'added' if op == '+' else 'removed'} {utc_iso(moment, 'seconds')}"


def attribute_value_text(a: Attribute) -> str:
    if a.value is None:
        return "-"
    if a.type == "timestamp" and isinstance(a.value, float):
        return utc_iso(a.value, "seconds")
    text = orjson.dumps(list(a.value) if isinstance(a.value, tuple) else a.value).decode()
    said = text if isinstance(a.value, tuple | bool | float) else str(a.value)
    return terminal_safe(said if len(said) <= 40 else said[:39] + "…")


def writer_text(a: Attribute) -> str:
    if a.snapshot is None:
        return "change"
    audience, code, generation = a.snapshot
    return terminal_safe(f"snapshot of {audience or f'code {code}'} gen {generation}")


def whose_text(u: Usage) -> str:
    return u.control.id if isinstance(u.control, ContactPolicy) else f"{u.offer_id}"


def control_text(u: Usage) -> str:
    control = u.control
    if isinstance(control, Cap | ContactPolicy):
        return f"{u.kind}: {control.max} {control.counts} per {period_text(control.period)}"
    within = f" within {duration_text(control.within_seconds)}" if control.within_seconds else ""
    return f"suppressed {duration_text(control.seconds)} after {control.dismissals} dismissal(s){within}"


def since_text(u: Usage) -> str:
    return "ever" if u.since_ms == 0 else utc_iso(u.since_ms / 1000, "seconds")


def reached_text(u: Usage) -> str:
    if not u.reached:
        return "room left"
    return (
        "REACHED, for good (lifetime)"
        if u.until_ms is None
        else f"REACHED until {utc_iso(u.until_ms / 1000, 'seconds')}"
    )


def times_text(times: tuple[int, ...]) -> str:
    return f"{len(times)} time(s), last {utc_iso(times[-1] / 1000, 'seconds')}" if times else "empty"


def duration_text(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"
