"""Checks that need the whole ruleset: fallbacks, unique experiment ids, formulas' offer attributes.

Each section is read on its own first; these run on the result and report at
the location of the placement or offer concerned.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet

from decision.rules.errors import Problem
from decision.rules.suggest import did_you_mean
from decision.rules.types import Location, Offer, Placement


def check_fallbacks(
    placements: dict[str, Placement], offers: dict[str, Offer], offer_ids_seen: AbstractSet[str]
) -> list[Problem]:
    """Each placement's fallback is an offer of that placement (an offer that was invalid has its own errors)."""
    problems: list[Problem] = []
    for placement in placements.values():
        path = f"placements[{placement.id}].fallback"
        fallback = offers.get(placement.fallback)
        if fallback is None:
            if placement.fallback not in offer_ids_seen:
                hint = did_you_mean(placement.fallback, offer_ids_seen)
                problems.append(
                    Problem(placement.location, path, f"fallback offer {placement.fallback!r} does not exist{hint}")
                )
        elif placement.id not in fallback.placements:
            problems.append(
                Problem(
                    placement.location,
                    path,
                    f"fallback offer {placement.fallback!r} does not list placement {placement.id!r}",
                )
            )
    return problems


def check_delivery_controls(placements: dict[str, Placement], offers: dict[str, Offer]) -> list[Problem]:
    """Fallbacks are never capped or experimented on; experiment ids are unique; formulas read existing attributes."""
    problems: list[Problem] = []
    fallbacks = {p.fallback for p in placements.values()}
    experiments: dict[str, Location] = {}
    for offer in offers.values():
        path = f"offers[{offer.id}]"
        if offer.id in fallbacks and (offer.caps or offer.suppression or offer.experiment):
            what = "caps" if offer.caps else "suppress" if offer.suppression else "experiment"
            problems.append(
                Problem(
                    offer.location,
                    f"{path}.{what}",
                    "a fallback offer is always served: it cannot be capped, suppressed or experimented on",
                )
            )
        if offer.experiment is not None:
            problems += _unique_experiment(
                offer.experiment.id, offer.experiment.location, f"{path}.experiment", experiments
            )
    for placement in placements.values():
        path = f"placements[{placement.id}]"
        if placement.experiment is not None:
            problems += _unique_experiment(
                placement.experiment.id, placement.experiment.location, f"{path}.experiment", experiments
            )
        formulas = [(f"{path}.score", placement.score)]
        if placement.experiment is not None:
            formulas += [(f"{path}.experiment.variants[{v.id}].score", v.score) for v in placement.experiment.variants]
        known = {name for o in offers.values() if placement.id in o.placements for name in o.attributes}
        for formula_path, formula in formulas:
            for name in sorted(formula.offer_refs - known if formula is not None else ()):
                problems.append(
                    Problem(
                        placement.location,
                        formula_path,
                        f"offer.{name}: no offer of placement {placement.id!r} has this attribute",
                    )
                )
    return problems


def _unique_experiment(eid: str, location: Location, path: str, seen: dict[str, Location]) -> list[Problem]:
    if eid in seen:
        return [Problem(location, f"{path}.id", f"experiment id {eid!r} is also used at {seen[eid]}")]
    seen[eid] = location
    return []
