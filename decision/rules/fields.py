"""The field names of every mapping of the rule language: which are allowed, which are required.

Stated once here and read by both the loader (``Walker.mapping``) and the JSON Schema
(:mod:`~decision.rules.schema`), so the two cannot disagree on a name. A leaf module: it imports
nothing of the package, so any rules module may read it without a cycle. The order of ``names``
and ``required_names`` is the order the schema lists them in; the loader does not depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Fields:
    names: tuple[str, ...]
    required_names: tuple[str, ...] = ()
    allowed: frozenset[str] = field(init=False, repr=False, compare=False)
    required: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not set(self.required_names) <= set(self.names):
            raise ValueError(f"required fields {self.required_names} not all among {self.names}")
        object.__setattr__(self, "allowed", frozenset(self.names))
        object.__setattr__(self, "required", frozenset(self.required_names))


RULESET = Fields(
    (
        "version",
        "settings",
        "attributes",
        "profile_attributes",
        "custom_events",
        "placements",
        "offers",
        "contact_policies",
    ),
    ("placements", "offers"),
)
SETTINGS = Fields(("allow_duplicate_propositions", "time_zone"))
PLACEMENT = Fields(
    ("id", "channels", "max_items", "fallback", "description", "score", "experiment", "ranking"),
    ("id", "channels", "fallback"),
)
OFFER = Fields(
    (
        "id",
        "placements",
        "priority",
        "content",
        "escape",
        "on_missing",
        "eligibility",
        "description",
        "attributes",
        "caps",
        "suppress",
        "experiment",
    ),
    ("id", "placements"),
)
# An offer's eligibility: one rule (named after the offer), or a list of rules each with its own name.
RULE = Fields(("name", "audiences", "conditions", "schedule"))
NAMED_RULE = Fields(RULE.names, ("name",))
AUDIENCES = Fields(("all", "any", "none"))
SCHEDULE = Fields(("start", "end"))
# The keywords of a condition besides context.<attribute> and profile.<name>.
CONDITION_KEYWORDS = ("and", "or", "not")
CAP = Fields(("max", "scope", "period", "time_zone", "counts"), ("max",))
SUPPRESS = Fields(("after_dismissals", "for", "within"), ("after_dismissals", "for"))
HOLDOUT_GROUP = Fields(("weight", "serves"), ("weight",))
RANKING = Fields(("strategy", "metric", "per", "min_exposure", "days"), ("strategy",))
EXPERIMENT = Fields(("id", "variants", "holdout", "allocation"), ("id", "variants"))
# A variant of an offer's experiment varies its content; one of a placement's, its score formula.
OFFER_VARIANT = Fields(("id", "weight", "content"), ("id", "weight"))
PLACEMENT_VARIANT = Fields(("id", "weight", "score"), ("id", "weight"))
CONTACT_POLICY = Fields(
    ("id", "channels", "placements", "max", "period", "time_zone", "counts", "description"),
    ("id", "max"),
)
