"""Parse a YAML ruleset into a validated :class:`Ruleset`, or report every problem.

The YAML is read as a node tree (not as plain Python values) so that every
problem can name the line it comes from (:mod:`~decision.rules.walker`). This
module reads the file and the top-level document; the sections are read by
:mod:`~decision.rules.catalog` (attributes, placements, offers),
:mod:`~decision.rules.delivery` (contact policies) and checked together by
:mod:`~decision.rules.crosschecks`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml
from yaml.nodes import Node

from decision.rules import delivery, yaml_guard
from decision.rules.catalog import CatalogReader
from decision.rules.crosschecks import check_delivery_controls, check_fallbacks
from decision.rules.errors import Problem, RulesetInvalid, Severity
from decision.rules.fields import RULESET, SETTINGS
from decision.rules.patterns import ID_PATTERN
from decision.rules.types import ContactPolicy, Location, Ruleset
from decision.rules.walker import Walker

MAX_FILE_BYTES = 16 * 1024 * 1024


def load_file(path: str | Path) -> Ruleset:
    """Read and validate a ruleset file. Raises :class:`RulesetInvalid` listing every error."""
    file = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise RulesetInvalid([Problem(Location(file, 0), "file", f"cannot read: {exc.strerror}")]) from exc
    ruleset, problems = parse(data, file)
    errors = [p for p in problems if p.severity is Severity.ERROR]
    if errors or ruleset is None:
        raise RulesetInvalid(errors)
    return ruleset


def parse(data: bytes, file: str) -> tuple[Ruleset | None, list[Problem]]:
    """Parse ruleset bytes. Returns the ruleset (None when there are errors) and all problems."""
    walker = Walker(file)
    root = _compose(data, walker)
    if root is None:
        return None, walker.problems
    ruleset = _build(walker, root, data)
    has_errors = any(p.severity is Severity.ERROR for p in walker.problems)
    return (None if has_errors else ruleset), walker.problems


def _compose(data: bytes, walker: Walker) -> Node | None:
    """The document's node tree, or None with the reason in ``walker.problems``."""
    file = walker.file

    def refuse(line: int, reason: str) -> None:
        walker.problems.append(Problem(Location(file, line), "file", reason))

    if len(data) > MAX_FILE_BYTES:
        refuse(0, f"larger than {MAX_FILE_BYTES} bytes")
        return None
    try:
        text = data.decode("utf-8")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except UnicodeDecodeError as exc:
        refuse(data[: exc.start].count(b"\n") + 1, "not valid UTF-8")
        return None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        refuse(mark.line + 1 if mark is not None else 0, f"invalid YAML: {exc.problem or exc}")
        return None
    except yaml.YAMLError as exc:
        refuse(0, f"invalid YAML: {exc}")
        return None
    except RecursionError:  # PyYAML composes recursively: report where the nesting gets too deep
        refuse(yaml_guard.too_deep_line(text), f"nested deeper than {yaml_guard.MAX_NESTING} levels")
        return None
    if root is None:
        refuse(1, "the ruleset is empty")
        return None
    if shape := yaml_guard.shape_problem(root):  # deep nesting, alias bombs: refused before any walk
        refuse(*shape)
        return None
    return root


def _build(w: Walker, root: Node, data: bytes) -> Ruleset | None:
    top = w.mapping(root, "", RULESET.allowed, RULESET.required)
    if top is None:
        return None
    version = None
    if "version" in top:
        version = w.string(top["version"], "version", ID_PATTERN, "version")
    if version is None:
        version = "sha256:" + hashlib.sha256(data).hexdigest()[:12]
    allow_duplicates = False
    time_zone = "UTC"
    if "settings" in top:
        settings = w.mapping(top["settings"], "settings", SETTINGS.allowed)
        if settings and "allow_duplicate_propositions" in settings:
            allow_duplicates = bool(
                w.boolean(settings["allow_duplicate_propositions"], "settings.allow_duplicate_propositions")
            )
        if settings and "time_zone" in settings:
            time_zone = delivery.time_zone(w, settings["time_zone"], "settings.time_zone") or "UTC"
    catalog = CatalogReader(w, time_zone)
    if "attributes" in top:
        catalog.read_attributes(top["attributes"])
    if "profile_attributes" in top:
        catalog.read_profile_attributes(top["profile_attributes"])
    placements = catalog.placements(top["placements"]) if "placements" in top else {}
    offers = catalog.offers(top["offers"], placements) if "offers" in top else {}
    w.problems += check_fallbacks(placements, offers, catalog.offer_ids_seen)
    contact_policies: tuple[ContactPolicy, ...] = ()
    if "contact_policies" in top:
        channels = frozenset(c for p in placements.values() for c in p.channels)
        contact_policies = delivery.contact_policies(
            w, top["contact_policies"], frozenset(catalog.placement_ids_seen), channels, time_zone
        )
    w.problems += check_delivery_controls(placements, offers)
    custom_events: tuple[str, ...] = ()
    if "custom_events" in top:
        custom_events = w.unique_strings(top["custom_events"], "custom_events", ID_PATTERN, "custom event type") or ()
    return Ruleset(
        version=version,
        placements=placements,
        offers=offers,
        attributes=dict(catalog.attributes),
        allow_duplicates=allow_duplicates,
        source=w.file,
        contact_policies=contact_policies,
        time_zone=time_zone,
        profile_attributes=dict(catalog.profile_attributes),
        custom_events=custom_events,
    )
