"""What changed between two rulesets: offers and placements added, removed, changed (and which fields).

Pure: compares validated :class:`Ruleset` values, so formatting, comments and
descriptions are not changes, and where a field was written (its line) is
not either. ``decision rules publish`` stores the summary against the active
version; ``decision rules diff A B`` prints it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from decision.rules.types import Offer, Placement, Ruleset

_T = TypeVar("_T")

# The compared fields, by the name written in a rules file.
OFFER_FIELDS: dict[str, Callable[[Offer], object]] = {
    "placements": lambda o: o.placements,
    "priority": lambda o: o.priority,
    "content": lambda o: o.content_json,
    "eligibility": lambda o: o.rules,
    "attributes": lambda o: dict(o.attributes),
    "caps": lambda o: o.caps,
    "suppress": lambda o: o.suppression,
    "experiment": lambda o: o.experiment,
}
PLACEMENT_FIELDS: dict[str, Callable[[Placement], object]] = {
    "channels": lambda p: p.channels,
    "max_items": lambda p: p.max_items,
    "fallback": lambda p: p.fallback,
    "score": lambda p: p.score,
    "experiment": lambda p: p.experiment,
    "ranking": lambda p: p.ranking,
}
RULESET_FIELDS: dict[str, Callable[[Ruleset], object]] = {
    "settings": lambda r: (r.allow_duplicates, r.time_zone),
    "attributes": lambda r: dict(r.attributes),
    "contact_policies": lambda r: r.contact_policies,
}


@dataclass(frozen=True, slots=True)
class PartChanges:
    """Ids added and removed; for each changed id, the names of its changed fields."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def to_json(self) -> dict[str, Any]:
        changed = {name: list(fields) for name, fields in self.changed.items()}
        return {"added": list(self.added), "removed": list(self.removed), "changed": changed}

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> PartChanges:
        changed = {str(k): tuple(map(str, v)) for k, v in dict(body.get("changed", {})).items()}
        return cls(tuple(map(str, body.get("added", ()))), tuple(map(str, body.get("removed", ()))), changed)


@dataclass(frozen=True, slots=True)
class RulesetChanges:
    offers: PartChanges
    placements: PartChanges
    # Ruleset-wide parts that changed: settings, attributes, contact_policies.
    other: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.offers or self.placements or self.other)

    def to_json(self) -> dict[str, Any]:
        return {"offers": self.offers.to_json(), "placements": self.placements.to_json(), "other": list(self.other)}

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> RulesetChanges:
        return cls(
            PartChanges.from_json(body.get("offers", {})),
            PartChanges.from_json(body.get("placements", {})),
            tuple(map(str, body.get("other", ()))),
        )

    def summary(self) -> str:
        """One line: ``offers +1 -0 ~2, placements ~1, settings`` (``no changes`` when equal)."""
        parts = [
            f"{name} +{len(part.added)} -{len(part.removed)} ~{len(part.changed)}"
            for name, part in (("offers", self.offers), ("placements", self.placements))
            if part
        ]
        return ", ".join([*parts, *self.other]) or "no changes"

    def lines(self) -> list[str]:
        """Every difference, one per line, as ``decision rules diff`` prints them."""
        result: list[str] = []
        for kind, part in (("offer", self.offers), ("placement", self.placements)):
            result += [f"+ {kind} {name}" for name in part.added]
            result += [f"- {kind} {name}" for name in part.removed]
            result += [f"~ {kind} {name}: {', '.join(fields)}" for name, fields in part.changed.items()]
        result += [f"~ {name}" for name in self.other]
        return result


def _part(old: Mapping[str, _T], new: Mapping[str, _T], fields: Mapping[str, Callable[[_T], object]]) -> PartChanges:
    changed: dict[str, tuple[str, ...]] = {}
    for name in new.keys() & old.keys():
        differing = tuple(f for f, read in fields.items() if read(old[name]) != read(new[name]))
        if differing:
            changed[name] = differing
    return PartChanges(
        added=tuple(name for name in new if name not in old),
        removed=tuple(name for name in old if name not in new),
        changed={name: changed[name] for name in new if name in changed},  # in the new file's order
    )


def diff(old: Ruleset, new: Ruleset) -> RulesetChanges:
    """The changes that turn ``old`` into ``new``."""
    return RulesetChanges(
        offers=_part(old.offers, new.offers, OFFER_FIELDS),
        placements=_part(old.placements, new.placements, PLACEMENT_FIELDS),
        other=tuple(name for name, read in RULESET_FIELDS.items() if read(old) != read(new)),
    )
