"""Run compiled rules on durable_rules' C engine, one request at a time.

This is the only module that touches durable_rules. It drives the engine's
C API (``durable_rules_engine``) directly instead of ``durable.lang``:

* ``durable.lang``'s host starts timer threads that dispatch actions in the
  background; here actions are taken synchronously, in the caller's thread;
* no Python callback runs per fired rule: the loop reads the fired rule's
  name from the action message and completes it;
* one fixed session id (``sid``) serves every request. durable_rules keeps
  state per sid and fails after 1,024 of them, so a profile id must never be
  one. Each request's fact is asserted, its actions drained, then retracted:
  nothing accumulates, however many profiles are decided.

The engine keeps global per-process state and is not thread-safe, hence the
lock (uncontended in the asyncio server, where decisions run on one thread).
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Final

import durable_rules_engine as _dre
import orjson

from decision.rules import reference
from decision.rules.compiler import MAX_FACT_PROPERTIES, Compilation, CompiledRule, compile_ruleset
from decision.rules.types import Context, Ruleset

# assert_fact's status codes (durable_rules rules.h).
_HANDLED: Final = 0
_NOT_HANDLED: Final = 1

_names = itertools.count(1)
_lock = threading.Lock()


class EngineError(RuntimeError):
    """durable_rules failed on a fact (a bug, or a limit of the engine)."""


class CompiledRuleset:
    """A ruleset ready to evaluate: its durable_rules ruleset lives as long as this object.

    Requests hold a reference to the CompiledRuleset they started with, so a
    reload never frees an engine ruleset that a pending request will use.
    """

    def __init__(self, ruleset: Ruleset, compilation: Compilation) -> None:
        self.ruleset = ruleset
        self.compilation = compilation
        self._rules: Mapping[str, CompiledRule] = compilation.rules
        self._layout = compilation.layout
        self._fact_ids = itertools.count(1)
        definition = orjson.dumps(compilation.definition).decode()
        with _lock:
            self._handle: int = _dre.create_ruleset(f"ruleset_{next(_names)}", definition)
        weakref.finalize(self, _delete_ruleset, self._handle)

    @property
    def version(self) -> str:
        return self.ruleset.version

    def eligible(self, audiences: AbstractSet[str], context: Context, now: float) -> dict[str, str]:
        """Offer id -> name of its first matching rule, for every eligible offer, in file order.

        Equal to ``reference.eligible`` on the same inputs (held by the
        property-based tests).
        """
        fact = self._layout.fact(next(self._fact_ids), audiences, context, now)
        if len(fact) > MAX_FACT_PROPERTIES:
            # More matching audiences than a fact can hold: rare, and still
            # answered exactly, by the plain evaluation of the same rules.
            return reference.eligible(self.ruleset, audiences, context, now)
        fired = self._fire(orjson.dumps(fact).decode())
        best: dict[str, CompiledRule] = {}
        for engine_name in fired:
            rule = self._rules[engine_name]
            current = best.get(rule.offer_id)
            if current is None or rule.rule_index < current.rule_index:
                best[rule.offer_id] = rule
        return {offer_id: best[offer_id].rule_name for offer_id in self.ruleset.offers if offer_id in best}

    def _fire(self, fact_json: str) -> set[str]:
        """Assert the fact, collect the names of the rules it fires, retract it."""
        handle = self._handle
        fired: set[str] = set()
        with _lock:
            try:
                status, state = _dre.assert_fact(handle, fact_json)
            except _dre.error as exc:
                raise EngineError(str(exc)) from exc
            try:
                if status == _HANDLED:
                    self._drain(state, fired)
                elif status != _NOT_HANDLED:
                    raise EngineError(f"durable_rules answered status {status} to a fact")
            finally:
                _dre.retract_fact(handle, fact_json)
        return fired

    def _drain(self, state: int, fired: set[str]) -> None:
        handle = self._handle
        result = _dre.start_action_for_state(handle, state)
        message = result[1] if result else None
        try:
            while message:
                # The message is {"<rule name>": {...}}; rule names are ours
                # (r<n>), so the name is the text between the first quotes.
                fired.add(message[2 : message.index('"', 2)])
                message = _dre.complete_and_start_action(handle, state)
        except BaseException:
            # An action left started would lock the session for its lease (30 s).
            _dre.abandon_action(handle, state)
            raise


def _delete_ruleset(handle: int) -> None:
    with _lock:
        _dre.delete_ruleset(handle)


def compile_and_load(ruleset: Ruleset) -> CompiledRuleset:
    """Compile a validated ruleset and load it into the engine."""
    return CompiledRuleset(ruleset, compile_ruleset(ruleset))
