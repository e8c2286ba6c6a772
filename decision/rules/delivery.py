"""The delivery-control sections: caps, dismissal suppression, contact policies, offer attributes and score
formulas (experiments: decision/rules/experiments.py).

Read with a :class:`~decision.rules.walker.Walker` like the rest of a ruleset,
kept apart from the eligibility language so that each can be read on its own.
Every problem is located (file:line).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from zoneinfo import ZoneInfo

from yaml.nodes import MappingNode, Node, ScalarNode

from decision.rules.errors import Problem
from decision.rules.fields import (
    CAP,
    CONTACT_POLICY,
    SUPPRESS,
)
from decision.rules.formula import Formula, FormulaError, parse_formula
from decision.rules.patterns import ATTRIBUTE_PATTERN, ID_PATTERN
from decision.rules.suggest import did_you_mean
from decision.rules.types import (
    CLICK,
    CUSTOM_PREFIX,
    DECISION,
    DISMISS,
    IMPRESSION,
    AttrType,
    Cap,
    CapScope,
    ContactPolicy,
    Location,
    Period,
    PeriodKind,
    ProfileAttrType,
    Suppression,
)
from decision.rules.walker import Walker

# Per-profile counts keep the latest event times (not a number), so their limits are small.
MAX_PROFILE_CAP = 1000
MAX_TOTAL_CAP = 10**12
MAX_ROLLING_DAYS = 400
MAX_DISMISSALS = 100
MAX_OFFER_ATTRIBUTES = 64

COUNTED = {
    DECISION: DECISION,
    IMPRESSION: IMPRESSION,
    "display": IMPRESSION,
    CLICK: CLICK,
    "interact": CLICK,
    DISMISS: DISMISS,
}
_DURATION = re.compile(r"([1-9][0-9]{0,4})([hd])")
_CALENDAR = {"day": PeriodKind.DAY, "week": PeriodKind.WEEK, "month": PeriodKind.MONTH}
PERIOD_HELP = "lifetime, day, week, month, or a rolling <N>h / <N>d"


def duration(w: Walker, node: Node, path: str) -> int | None:
    """``<N>h`` or ``<N>d`` -> seconds."""
    text = w.string(node, path)
    if text is None:
        return None
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        w.error(node, path, f"invalid duration {text!r}: expected <N>h or <N>d, e.g. 12h or 7d")
        return None
    seconds = int(match.group(1)) * (3600 if match.group(2) == "h" else 86_400)
    if seconds > MAX_ROLLING_DAYS * 86_400:
        w.error(node, path, f"longer than {MAX_ROLLING_DAYS} days")
        return None
    return seconds


def time_zone(w: Walker, node: Node, path: str) -> str | None:
    name = w.string(node, path)
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        w.error(node, path, f"unknown time zone {name!r} (an IANA name, e.g. Europe/Paris or UTC)")
        return None
    return name


def period(
    w: Walker, node: Node | None, tz_node: Node | None, path: str, default_tz: str, *, rolling: bool = True
) -> Period | None:
    """``period`` (+ ``time_zone``) of a cap or a contact policy; missing: lifetime."""
    kind = PeriodKind.LIFETIME
    seconds = 0
    if node is not None:
        text = w.string(node, f"{path}.period")
        if text is None:
            return None
        if text in _CALENDAR:
            kind = _CALENDAR[text]
        elif text != "lifetime":
            if _DURATION.fullmatch(text) is None:
                w.error(node, f"{path}.period", f"invalid period {text!r}: expected {PERIOD_HELP}")
                return None
            if not rolling:
                w.error(
                    node,
                    f"{path}.period",
                    f"rolling periods are not available here: use lifetime, day, week or month (got {text!r})",
                )
                return None
            seconds = duration(w, node, f"{path}.period") or 0
            if not seconds:
                return None
            kind = PeriodKind.ROLLING
    tz = default_tz
    if tz_node is not None:
        if kind not in (PeriodKind.DAY, PeriodKind.WEEK, PeriodKind.MONTH):
            w.error(tz_node, f"{path}.time_zone", "a time zone applies to calendar periods only (day, week, month)")
            return None
        chosen = time_zone(w, tz_node, f"{path}.time_zone")
        if chosen is None:
            return None
        tz = chosen
    return Period(kind, seconds, tz if kind in (PeriodKind.DAY, PeriodKind.WEEK, PeriodKind.MONTH) else "UTC")


def counted(w: Walker, node: Node | None, path: str) -> str | None:
    """What is counted: decision (default), impression/display, click/interact, dismiss, custom:<name>."""
    if node is None:
        return DECISION
    text = w.string(node, path)
    if text is None:
        return None
    if text in COUNTED:
        return COUNTED[text]
    if text.startswith(CUSTOM_PREFIX) and ID_PATTERN.fullmatch(text[len(CUSTOM_PREFIX) :]):
        return text
    w.error(
        node,
        path,
        f"unknown event {text!r}: expected decision, impression (display), click (interact), dismiss "
        "or custom:<event type>",
    )
    return None


def caps(w: Walker, node: Node, path: str, default_tz: str) -> tuple[Cap, ...]:
    result: list[Cap] = []
    for index, item in enumerate(w.sequence(node, path) or []):
        item_path = f"{path}[{index}]"
        fields = w.mapping(item, item_path, CAP.allowed, CAP.required)
        if fields is None:
            continue
        scope = CapScope.PROFILE
        if "scope" in fields:
            text = w.choice(fields["scope"], f"{item_path}.scope", CapScope, "scope")
            if text is None:
                continue
            scope = CapScope(text)
        limit = MAX_PROFILE_CAP if scope is CapScope.PROFILE else MAX_TOTAL_CAP
        maximum = w.integer(fields["max"], f"{item_path}.max", 1, limit) if "max" in fields else None
        cap_period = period(
            w,
            fields.get("period"),
            fields.get("time_zone"),
            item_path,
            default_tz,
            rolling=scope is CapScope.PROFILE,
        )
        counts = counted(w, fields.get("counts"), f"{item_path}.counts")
        if maximum is None or cap_period is None or counts is None:
            continue
        result.append(Cap(maximum, scope, cap_period, counts, w.loc(item)))
    return tuple(result)


def suppression(w: Walker, node: Node, path: str) -> Suppression | None:
    fields = w.mapping(node, path, SUPPRESS.allowed, SUPPRESS.required)
    if fields is None:
        return None
    dismissals = (
        w.integer(fields["after_dismissals"], f"{path}.after_dismissals", 1, MAX_DISMISSALS)
        if "after_dismissals" in fields
        else None
    )
    seconds = duration(w, fields["for"], f"{path}.for") if "for" in fields else None
    within = duration(w, fields["within"], f"{path}.within") if "within" in fields else None
    if dismissals is None or seconds is None or ("within" in fields and within is None):
        return None
    return Suppression(dismissals, seconds, within, w.loc(node))


def offer_attributes(w: Walker, node: Node, path: str) -> dict[str, float]:
    result: dict[str, float] = {}
    if isinstance(node, MappingNode) and len(node.value) > MAX_OFFER_ATTRIBUTES:
        w.error(node, path, f"at most {MAX_OFFER_ATTRIBUTES} attributes")
        return result
    for _, name, value_node in w.named(node, path, ATTRIBUTE_PATTERN, "attribute name to number"):
        number = w.number(value_node, f"{path}.{name}")
        if number is not None:
            result[name] = number
    return result


class ScoreReader:
    """Parses formulas and checks their context and profile references against the declared attributes."""

    def __init__(
        self,
        w: Walker,
        attributes: dict[str, AttrType],
        declared: bool,
        profile: Mapping[str, ProfileAttrType] | None = None,
    ) -> None:
        self.w = w
        self.attributes = attributes
        self.declared = declared
        self.profile = profile or {}

    def formula(self, node: Node, path: str) -> Formula | None:
        w = self.w
        text = w.string(node, path)
        if text is None:
            return None
        try:
            parsed = parse_formula(text)
        except FormulaError as exc:
            location, column = self._location(node, text, exc.column)
            w.problems.append(Problem(location, path, f"column {column}: {exc.reason}"))
            return None
        for name in sorted(parsed.context_refs):
            declared = self.attributes.get(name)
            if self.declared and declared is None:
                hint = did_you_mean(name, self.attributes)
                w.error(node, path, f"unknown attribute context.{name} (not declared under attributes:){hint}")
                return None
            if declared is not None and declared is not AttrType.NUMBER:
                w.error(node, path, f"context.{name} is declared {declared}; a formula reads numbers only")
                return None
        for name in sorted(parsed.profile_refs):
            profile_type = self.profile.get(name)
            if profile_type is None:
                w.error(node, path, f"unknown attribute profile.{name} (not declared under profile_attributes:)")
                return None
            if profile_type.rule_type is not AttrType.NUMBER:
                w.error(node, path, f"profile.{name} is declared {profile_type}; a formula reads numbers only")
                return None
        return parsed

    def _location(self, node: Node, text: str, column: int) -> tuple[Location, int]:
        """The line of the formula's faulty column, and the column in that line (a literal block spans lines)."""
        line = node.start_mark.line + 1
        if isinstance(node, ScalarNode) and node.style in ("|", ">"):
            line += 1
            if node.style == "|":  # a folded block (>) joined its lines: only the formula's column is known
                before = text[: column - 1]
                line += before.count("\n")
                column -= before.rfind("\n") + 1
        return Location(self.w.file, line), column


def contact_policies(
    w: Walker, node: Node, placements: frozenset[str], channels: frozenset[str], default_tz: str
) -> tuple[ContactPolicy, ...]:
    result: list[ContactPolicy] = []
    for index, item in enumerate(w.sequence(node, "contact_policies") or []):
        path = f"contact_policies[{index}]"
        fields = w.mapping(item, path, CONTACT_POLICY.allowed, CONTACT_POLICY.required)
        if fields is None:
            continue
        pid = w.string(fields["id"], f"{path}.id", ID_PATTERN, "policy id") if "id" in fields else None
        if pid is not None:
            path = f"contact_policies[{pid}]"
            if any(p.id == pid for p in result):
                w.error(fields["id"], f"{path}.id", f"duplicate policy id {pid!r}")
                pid = None
        if "description" in fields:
            w.string(fields["description"], f"{path}.description")
        chosen_channels = _names(w, fields.get("channels"), f"{path}.channels", channels, "channel")
        chosen_placements = _names(w, fields.get("placements"), f"{path}.placements", placements, "placement")
        if "channels" not in fields and "placements" not in fields:
            w.error(item, path, "needs channels, placements, or both")
            continue
        maximum = w.integer(fields["max"], f"{path}.max", 1, MAX_PROFILE_CAP) if "max" in fields else None
        policy_period = period(w, fields.get("period"), fields.get("time_zone"), path, default_tz)
        counts = counted(w, fields.get("counts"), f"{path}.counts")
        if counts == DISMISS and "counts" in fields:
            w.error(fields["counts"], f"{path}.counts", "a contact policy counts messages, not dismissals")
            continue
        if None in (pid, chosen_channels, chosen_placements, maximum, policy_period, counts):
            continue
        assert pid is not None and maximum is not None and policy_period is not None and counts is not None
        assert chosen_channels is not None and chosen_placements is not None
        result.append(
            ContactPolicy(pid, chosen_channels, chosen_placements, maximum, policy_period, counts, w.loc(item))
        )
    return tuple(result)


def _names(w: Walker, node: Node | None, path: str, known: frozenset[str], what: str) -> frozenset[str] | None:
    if node is None:
        return frozenset()
    names = w.unique_strings(node, path, ID_PATTERN, what)
    if names is None:
        return None
    for index, name in enumerate(names):
        if name not in known:
            w.error(node.value[index], f"{path}[{index}]", f"unknown {what} {name!r}{did_you_mean(name, known)}")
            return None
    return frozenset(names)
