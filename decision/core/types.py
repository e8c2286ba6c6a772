"""Domain types of a decision: what the service is asked and what it answers.

The gRPC layer translates protobuf messages to and from these; nothing below
it knows about protobuf.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from decision.rules.types import Context, ContextValue, Op, Scalar


class InvalidRequest(Exception):
    """A request that cannot be decided; ``field`` names the offending field."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


@dataclass(frozen=True, slots=True)
class PlacementRequest:
    placement_id: str
    # 0: the placement's own max_items.
    max_items: int = 0


@dataclass(frozen=True, slots=True)
class DecisionRequest:
    profile_id: str
    channel: str
    placements: tuple[PlacementRequest, ...]
    context: Context
    request_id: str = ""
    explain: bool = False
    # Offer ids: for each, the smallest change that would make it win (decision.core.why_not); needs ``explain``.
    why_not: tuple[str, ...] = ()
    # A dry run: decided as any request, counted nowhere (no proposal tallied, nothing reserved or written,
    # no tracking tokens): docs/api.md.
    dry_run: bool = False


@dataclass(slots=True)  # not frozen: built on every decision, and frozen inits are slow
class Item:
    offer_id: str
    content_json: str
    rule: str
    priority: int
    score: float
    tracking_token: str
    fallback: bool = False
    # The experiment that decided the item (the offer's, else the placement's) and the variant
    # served ("holdout": its control group); empty without one.
    experiment_id: str = ""
    variant: str = ""


@dataclass(slots=True)  # not frozen: built on every decision, and frozen inits are slow
class Proposition:
    placement_id: str
    items: tuple[Item, ...]
    fallback: bool
    # The placement's experiment and this profile's variant ("holdout"), empty without one.
    experiment_id: str = ""
    variant: str = ""


class Outcome(StrEnum):
    """What became of one offer in one placement (decision.core.explain)."""

    SELECTED = "selected"
    FALLBACK = "fallback"  # served as the placement's fallback
    PROFILE_UNAVAILABLE = "profile_unavailable"  # Redis did not answer: fallbacks only
    OUTSIDE_SCHEDULE = "outside_schedule"
    NOT_IN_AUDIENCE = "not_in_audience"
    IN_EXCLUDED_AUDIENCE = "in_excluded_audience"
    CONDITION_FALSE = "condition_false"
    HOLDOUT = "holdout"
    CAPPED = "capped"
    SUPPRESSED = "suppressed"
    TOTAL_CAP_REACHED = "total_cap_reached"
    CONTACT_POLICY = "contact_policy"
    PROPOSED_ELSEWHERE = "proposed_elsewhere"  # shown in another placement of the response
    LOST_RANKING = "lost_ranking"
    CONTENT_MISSING = "content_missing"  # its content needs a value the decision lacks (on_missing: skip)


@dataclass(frozen=True, slots=True)
class Explanation:
    offer_id: str
    placement_id: str
    outcome: Outcome
    reason: str  # one readable sentence
    rule: str = ""  # the eligibility rule that matched, or the one whose failure is reported
    audience: str = ""  # the missing or excluded audience(s)
    condition: str = ""  # the condition that was false, e.g. "context.cart_value > 100"
    attribute: str = ""  # context: its name; a profile attribute: profile.<name>
    actual: ContextValue | None = None  # the attribute's value in the request or profile; None: absent
    beaten_by: str = ""
    limit: int = 0  # cap, total or contact policy maximum
    count: int = 0  # its current count
    experiment_id: str = ""


@dataclass(slots=True)  # not frozen: built on every decision, and frozen inits are slow
class Decision:
    propositions: tuple[Proposition, ...]
    ruleset_version: str
    degraded: bool
    request_id: str
    decision_id: str
    # Filled only when the request asks for it (decision.core.explain).
    explanations: tuple[Explanation, ...] = ()
    # One per (offer the request named in ``why_not``, requested placement offering it): decision.core.why_not.
    why_not: tuple[WhyNot, ...] = ()
    # The decision of a dry run: counted nowhere, its items without tracking tokens.
    dry_run: bool = False


# -- Why not this offer: the typed answer of decision.core.why_not (worded by decision.core.explain) ---------------


@dataclass(frozen=True, slots=True)
class Requirement:
    """What a value must meet: ``op operand`` true (``holds``) or false (under a ``not``)."""

    op: Op
    operand: Scalar | tuple[Scalar, ...]
    holds: bool = True


@dataclass(frozen=True, slots=True)
class SetValue:
    """The request (``context.<name>``) or the profile (``profile.<name>``) holds a value meeting every requirement.

    ``value``: one that does, the closest to ``actual`` found (None: the attribute left out)."""

    attribute: str  # as the rules see it: a context name, or profile.<name>
    actual: ContextValue | None
    requirements: tuple[Requirement, ...]
    value: ContextValue | None


@dataclass(frozen=True, slots=True)
class JoinAudience:
    """The profile joins the audience (``any``: one of the audiences)."""

    audiences: tuple[str, ...]
    any: bool = False


@dataclass(frozen=True, slots=True)
class LeaveAudience:
    """The profile leaves an excluded audience."""

    audience: str


class WaitFor(StrEnum):
    """What time lifts: a rule's schedule starts, a cap or contact policy has room, a suppression or total ends."""

    SCHEDULE = "schedule"
    CAP = "cap"
    SUPPRESSION = "suppression"
    TOTAL_CAP = "total_cap"
    CONTACT_POLICY = "contact_policy"


@dataclass(frozen=True, slots=True)
class WaitUntil:
    """Nothing to change but the time: from ``at_ms`` on; ``subject``: the rule, cap or policy (as written)."""

    at_ms: int
    reason: WaitFor
    subject: str = ""


class RankPart(StrEnum):
    """The part of the rank key (decision.core.verdicts.rank_key) where two offers first differ."""

    PRIORITY = "priority"
    EXPLORING = "exploring"  # in a ``ranking:`` placement, an offer below its minimum exposure goes first
    DRAW = "draw"  # the Thompson draw
    SCORE = "score"
    POSITION = "position"  # file order


@dataclass(frozen=True, slots=True)
class Outrank:
    """A change of the rules: rank above ``offer_id`` (the last offer shown), which wins on ``part``."""

    offer_id: str
    part: RankPart
    ours: float | None  # the offer's value of that part (None: no score or no draw)
    theirs: float | None


Change = SetValue | JoinAudience | LeaveAudience | WaitUntil | Outrank


@dataclass(frozen=True, slots=True)
class Remedy:
    """One way to make the offer win: all of ``changes`` together, through eligibility rule ``rule``."""

    changes: tuple[Change, ...]
    rule: str = ""


@dataclass(frozen=True, slots=True)
class Never:
    """An obstacle no change of the request, the profile or the time lifts, for this path to the offer.

    ``outcome``: what it is — outside_schedule: rule ``subject``'s schedule ended at ``at_ms``, or ends then,
    before the wait ``after`` that the offer needs is over; condition_false:
    no value meets rule ``subject``'s condition; holdout: the profile is in the holdout group of experiment
    ``subject`` (a hash of the profile: sticky); capped / total_cap_reached: cap ``subject`` counts for a lifetime;
    contact_policy: policy ``subject`` counts for a lifetime; suppressed: dismissed, suppressed for good;
    proposed_elsewhere: shown in placement ``subject`` of the response; profile_unavailable: the profile was
    not read (ask again)."""

    outcome: Outcome
    subject: str = ""
    at_ms: int | None = None
    # outside_schedule only: the wait that would end after the schedule does (None: the schedule has ended).
    after: WaitUntil | None = None


@dataclass(frozen=True, slots=True)
class WhyNot:
    """Why an offer did not win in one placement, and the smallest changes that would make it win for this profile.

    ``remedies``: each a set of changes that together would, fewest first (empty: none found);
    ``never``: what closes the other ways (all of them when there is no remedy)."""

    offer_id: str
    placement_id: str
    outcome: Outcome  # its outcome in the decision
    remedies: tuple[Remedy, ...] = ()
    never: tuple[Never, ...] = ()

    @property
    def shown(self) -> bool:
        """It won: shown in this placement (selected, or served as its fallback)."""
        return self.outcome in (Outcome.SELECTED, Outcome.FALLBACK)
