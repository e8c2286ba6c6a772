"""The ruleset in service, replaced atomically: each request uses the one it started with."""

from __future__ import annotations

import logging
from pathlib import Path

from decision.rules.engine import CompiledRuleset, compile_and_load
from decision.rules.loader import load_file

log = logging.getLogger(__name__)


def load_compiled(path: str | Path) -> CompiledRuleset:
    """Load, validate and compile a ruleset file. Raises RulesetInvalid."""
    return compile_and_load(load_file(path))


class ActiveRuleset:
    def __init__(self, compiled: CompiledRuleset) -> None:
        self._current = compiled

    @property
    def current(self) -> CompiledRuleset:
        return self._current

    def replace(self, compiled: CompiledRuleset) -> CompiledRuleset:
        """Swap in a new ruleset; returns the previous one.

        A single reference assignment: requests that already took the old one
        finish with it, and its engine ruleset is freed when the last of them
        lets go.
        """
        previous, self._current = self._current, compiled
        log.info("ruleset %s replaced by %s", previous.version, compiled.version)
        return previous
