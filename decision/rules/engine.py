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

A request asserts its fact into one engine ruleset, the one of the placements
it asks for, holding only the rules whose schedule includes the present
(``CompiledRuleset``).
"""

from __future__ import annotations

import bisect
import itertools
import math
import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Final

import durable_rules_engine as _dre
import orjson

from decision.rules import reference
from decision.rules.compiler import MAX_FACT_PROPERTIES, Compilation, CompiledRule, FactLayout, compile_ruleset
from decision.rules.types import Context, Ruleset

# assert_fact's status codes (durable_rules rules.h).
_HANDLED: Final = 0
_NOT_HANDLED: Final = 1

# Engine rulesets kept per CompiledRuleset: one per combination of placements requested (built on first
# use, least recently used dropped), all of one schedule period.
MAX_COMBINATIONS: Final = 64

_names = itertools.count(1)
# Reentrant: a finalizer freeing another ruleset may run (garbage collection) while a request holds it.
_lock = threading.RLock()


class EngineError(RuntimeError):
    """durable_rules failed on a fact (a bug, or a limit of the engine)."""


class CompiledRuleset:
    """A ruleset ready to evaluate: its durable_rules rulesets live as long as this object.

    Requests hold a reference to the CompiledRuleset they started with, so a
    reload never frees an engine ruleset that a pending request will use.

    A request asserts one fact into one engine ruleset: the one holding the
    rules of the offers of the placements it asks for (the engine's cost grows
    with the rules it holds and the actions it hands back, one per matching
    rule), built the first time that combination of placements is asked for.
    Rules are held only while their schedule includes the present: between two
    consecutive starts or ends of schedules (a *period*) the set of rules that
    may match is fixed, so the schedule is checked once per period, not per
    request; the first request of a new period rebuilds the rulesets it needs.
    """

    def __init__(self, ruleset: Ruleset, compilation: Compilation) -> None:
        self.ruleset = ruleset
        self.compilation = compilation
        self._rules: Mapping[str, CompiledRule] = compilation.rules
        self._definition: Mapping[str, object] = compilation.definition
        self._layout = compilation.layout
        self._fact_ids = itertools.count(1)
        self._position = {offer_id: index for index, offer_id in enumerate(ruleset.offers)}
        self._placements_of = {offer.id: frozenset(offer.placements) for offer in ruleset.offers.values()}
        # Every start and end of a schedule, in order: the periods' bounds.
        self._bounds = sorted(
            {t for rule in self._rules.values() for t in (rule.schedule.start, rule.schedule.end) if t is not None}
        )
        self._period = (math.inf, -math.inf)  # [from, until) of the rulesets below: none yet
        self._active: tuple[str, ...] = ()  # engine names of the rules whose schedule includes the period
        # Placements (None: all) -> the engine ruleset of their offers' active rules (0: no rule to hold), and
        # the layout of the facts asserted into it.
        self._combinations: OrderedDict[frozenset[str] | None, tuple[int, FactLayout]] = OrderedDict()
        weakref.finalize(self, _delete_rulesets, self._combinations)

    @property
    def version(self) -> str:
        return self.ruleset.version

    @property
    def held(self) -> int:
        """How many combinations of placements have their engine ruleset built (at most MAX_COMBINATIONS)."""
        return len(self._combinations)

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
        fired: set[str] = set()
        key = None if placements is None else frozenset(placements)
        with _lock:
            start, until = self._period
            if not start <= now < until:
                self._enter_period(now)
            built = self._combinations.get(key)
            if built is None:
                built = self._build(key)
            else:
                self._combinations.move_to_end(key)
            handle, layout = built
            if handle:
                fact = layout.fact(next(self._fact_ids), audiences, context)
                if len(fact) > MAX_FACT_PROPERTIES:
                    # More matching audiences than a fact can hold: rare, and still
                    # answered exactly, by the plain evaluation of the same rules.
                    everything = reference.eligible(self.ruleset, audiences, context, now)
                    if placements is None:
                        return everything
                    offers = self.ruleset.offers
                    return {o: r for o, r in everything.items() if any(p in offers[o].placements for p in placements)}
                self._fire(handle, orjson.dumps(fact).decode(), fired)
        best: dict[str, CompiledRule] = {}
        for engine_name in fired:
            rule = self._rules[engine_name]
            current = best.get(rule.offer_id)
            if current is None or rule.rule_index < current.rule_index:
                best[rule.offer_id] = rule
        position = self._position
        return {offer_id: best[offer_id].rule_name for offer_id in sorted(best, key=position.__getitem__)}

    def _enter_period(self, now: float) -> None:
        """Drop the rulesets of the last period; note the rules active in the one holding ``now``."""
        _delete_rulesets(self._combinations)
        after = bisect.bisect_right(self._bounds, now)
        start = self._bounds[after - 1] if after > 0 else -math.inf
        until = self._bounds[after] if after < len(self._bounds) else math.inf
        self._period = (start, until) if start <= now < until else (math.inf, -math.inf)  # NaN: every time
        self._active = tuple(name for name, rule in self._rules.items() if rule.schedule.contains(now))

    def _build(self, placements: frozenset[str] | None) -> tuple[int, FactLayout]:
        """The engine ruleset of the placements' offers' active rules (0 when there is none) and its facts'
        layout, kept."""
        rules, placements_of = self._rules, self._placements_of
        subset = {
            name: self._definition[name]
            for name in self._active
            if placements is None or not placements_of[rules[name].offer_id].isdisjoint(placements)
        }
        handle = 0
        if subset:
            handle = _dre.create_ruleset(f"ruleset_{next(_names)}", orjson.dumps(subset).decode())
        if len(self._combinations) >= MAX_COMBINATIONS:
            _, (dropped, _) = self._combinations.popitem(last=False)
            if dropped:
                _dre.delete_ruleset(dropped)
        # The facts asserted into it hold only the fields its rules test (a field is a key of the definition).
        built = self._combinations[placements] = (handle, self._layout.restricted(_keys(subset, set())))
        return built

    def _fire(self, handle: int, fact_json: str, fired: set[str]) -> None:
        """Assert the fact, add the names of the rules it fires to ``fired``, retract it (under the lock)."""
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


def _keys(definition: object, found: set[str]) -> set[str]:
    """Every key of the objects in a durable_rules definition (JSON): the fields its rules test among them."""
    if isinstance(definition, dict):
        for name, value in definition.items():
            found.add(name)
            _keys(value, found)
    elif isinstance(definition, list):
        for value in definition:
            _keys(value, found)
    return found


def _delete_rulesets(combinations: OrderedDict[frozenset[str] | None, tuple[int, FactLayout]]) -> None:
    """Free the engine rulesets (the finalizer of a CompiledRuleset; a new period)."""
    with _lock:
        for handle, _ in combinations.values():
            if handle:
                _dre.delete_ruleset(handle)
        combinations.clear()


def compile_and_load(ruleset: Ruleset) -> CompiledRuleset:
    """Compile a validated ruleset and load it into the engine."""
    return CompiledRuleset(ruleset, compile_ruleset(ruleset))
