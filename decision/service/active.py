"""The ruleset in service, prepared once and replaced atomically: each request uses the one it started with."""

from __future__ import annotations

import logging
from pathlib import Path

from decision.core.controls import DEFAULT_RETENTION_SECONDS, DeliveryControls
from decision.core.planning import static_ranks
from decision.rules.engine import CompiledRuleset, compile_and_load
from decision.rules.loader import load_file
from decision.rules.types import Allocation, Experiment, Ruleset

log = logging.getLogger(__name__)


def load_compiled(path: str | Path) -> CompiledRuleset:
    """Load, validate and compile a ruleset file. Raises RulesetInvalid."""
    return compile_and_load(load_file(path))


def auto_experiments(ruleset: Ruleset) -> dict[str, Experiment]:
    found = [p.experiment for p in ruleset.placements.values()] + [o.experiment for o in ruleset.offers.values()]
    return {e.id: e for e in found if e is not None and e.allocation is Allocation.AUTO}


class PreparedRuleset:
    """A compiled ruleset with what a decision needs of it that no request changes, built once with it: its
    delivery controls (caps, suppressions, contact policies), the rank order of its placements. (The engine
    rulesets of the placements requested are built by the CompiledRuleset, as requests ask for them.)"""

    __slots__ = ("auto", "compiled", "controls", "custom_events", "ranks")

    def __init__(self, compiled: CompiledRuleset, lifetime_retention_seconds: int = DEFAULT_RETENTION_SECONDS) -> None:
        self.compiled = compiled
        self.controls = DeliveryControls.build(compiled.ruleset, lifetime_retention_seconds)
        # ``allocation: auto`` experiments by id: their sticky variants are read with the profile.
        self.auto = auto_experiments(compiled.ruleset)
        self.ranks = static_ranks(compiled.ruleset)
        # The custom event types RecordEvents accepts (any other is rejected, naming its custom_type).
        self.custom_events = compiled.ruleset.custom_event_types()

    @property
    def ruleset(self) -> Ruleset:
        return self.compiled.ruleset

    @property
    def version(self) -> str:
        return self.compiled.version


class ActiveRuleset:
    def __init__(self, compiled: CompiledRuleset, lifetime_retention_seconds: int = DEFAULT_RETENTION_SECONDS) -> None:
        self.lifetime_retention_seconds = lifetime_retention_seconds
        self._current = PreparedRuleset(compiled, lifetime_retention_seconds)

    @property
    def current(self) -> PreparedRuleset:
        return self._current

    def replace(self, compiled: CompiledRuleset) -> PreparedRuleset:
        """Prepare and swap in a new ruleset; returns the previous one.

        A single reference assignment: requests that already took the old one
        finish with it, and its engine ruleset is freed when the last of them
        lets go.
        """
        prepared = PreparedRuleset(compiled, self.lifetime_retention_seconds)
        previous, self._current = self._current, prepared
        log.info("ruleset %s replaced by %s", previous.version, prepared.version)
        return previous
