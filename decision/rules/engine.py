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
from collections.abc import Mapping, Sequence
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
        self._position = {offer_id: index for index, offer_id in enumerate(ruleset.offers)}
        # One engine ruleset with every rule, and one per placement with the rules of its offers: a
        # request evaluates only what its placements can show (the engine's cost grows with the rules
        # it holds and the actions it hands back, one per matching rule).
        definition: Mapping[str, object] = compilation.definition
        self._handle = self._load(definition)
        self._placement_handles: dict[str, tuple[int, int]] = {}
        self._offers_cache: dict[tuple[str, ...], frozenset[str]] = {}
        for placement_id in ruleset.placements:
            subset = {
                name: rule
                for name, rule in definition.items()
                if placement_id in ruleset.offers[self._rules[name].offer_id].placements
            }
            if subset:
                self._placement_handles[placement_id] = (self._load(subset), len(subset))

    def _load(self, definition: Mapping[str, object]) -> int:
        with _lock:
            handle: int = _dre.create_ruleset(f"ruleset_{next(_names)}", orjson.dumps(definition).decode())
        weakref.finalize(self, _delete_ruleset, handle)
        return handle

    @property
    def version(self) -> str:
        return self.ruleset.version

    def eligible(
        self,
        audiences: AbstractSet[str],
        context: Context,
        now: float,
        placements: Sequence[str] | None = None,
    ) -> dict[str, str]:
        """Offer id -> name of its first matching rule, for every eligible offer, in file order.

        With ``placements``, only the offers of those placements (the others are
        not evaluated). Equal to ``reference.eligible`` on the same inputs,
        restricted to those placements' offers (held by the property-based tests).
        """
        fact = self._layout.fact(next(self._fact_ids), audiences, context, now)
        if len(fact) > MAX_FACT_PROPERTIES:
            # More matching audiences than a fact can hold: rare, and still
            # answered exactly, by the plain evaluation of the same rules.
            everything = reference.eligible(self.ruleset, audiences, context, now)
            if placements is None:
                return everything
            offers = self.ruleset.offers
            return {o: r for o, r in everything.items() if any(p in offers[o].placements for p in placements)}
        fact_json = orjson.dumps(fact).decode()
        fired: set[str] = set()
        handles, wanted = self._handles_for(placements)
        for handle in handles:
            self._fire(handle, fact_json, fired)
        best: dict[str, CompiledRule] = {}
        for engine_name in fired:
            rule = self._rules[engine_name]
            if wanted is not None and rule.offer_id not in wanted:
                continue
            current = best.get(rule.offer_id)
            if current is None or rule.rule_index < current.rule_index:
                best[rule.offer_id] = rule
        position = self._position
        return {offer_id: best[offer_id].rule_name for offer_id in sorted(best, key=position.__getitem__)}

    def _handles_for(self, placements: Sequence[str] | None) -> tuple[list[int], frozenset[str] | None]:
        """The engine rulesets to assert into, and the offers to keep of what fires (None: all).

        The placements' own rulesets, unless together they hold as many rules as the whole one
        (offers shown in several placements are in several): then the whole one, its answer
        narrowed to the placements' offers.
        """
        if placements is None:
            return [self._handle], None
        chosen = [self._placement_handles[p] for p in dict.fromkeys(placements) if p in self._placement_handles]
        if sum(size for _, size in chosen) >= len(self._rules):
            return [self._handle], self._offers_of(tuple(placements))
        return [handle for handle, _ in chosen], None

    def _offers_of(self, placements: tuple[str, ...]) -> frozenset[str]:
        offers = self._offers_cache.get(placements)
        if offers is None:
            offers = frozenset(o.id for o in self.ruleset.offers.values() if any(p in o.placements for p in placements))
            if len(self._offers_cache) < 256:  # bounded: requests name placements in few combinations
                self._offers_cache[placements] = offers
        return offers

    def _fire(self, handle: int, fact_json: str, fired: set[str]) -> None:
        """Assert the fact, add the names of the rules it fires to ``fired``, retract it."""
        with _lock:
            try:
                status, state = _dre.assert_fact(handle, fact_json)
            except _dre.error as exc:
                raise EngineError(str(exc)) from exc
            try:
                if status == _HANDLED:
                    self._drain(handle, state, fired)
                elif status != _NOT_HANDLED:
                    raise EngineError(f"durable_rules answered status {status} to a fact")
            finally:
                _dre.retract_fact(handle, fact_json)

    def _drain(self, handle: int, state: int, fired: set[str]) -> None:
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
