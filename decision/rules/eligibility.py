"""An offer's eligibility rules: who (audiences), when (schedule) and in which context (conditions)."""

from __future__ import annotations

from yaml.nodes import Node, SequenceNode

from decision.rules.conditions import ConditionReader
from decision.rules.fields import AUDIENCES, NAMED_RULE, RULE, SCHEDULE
from decision.rules.patterns import AUDIENCE_PATTERN, ID_PATTERN
from decision.rules.types import AudienceRule, Condition, EligibilityRule, Schedule


class EligibilityReader:
    def __init__(self, conditions: ConditionReader) -> None:
        self.w = conditions.w
        self.conditions = conditions

    def rules(self, node: Node | None, offer_node: Node, path: str, offer_id: str) -> tuple[EligibilityRule, ...]:
        """``eligibility:`` of an offer: one rule (named after the offer), a list of named rules, or none (always)."""
        w = self.w
        if node is None:
            return (EligibilityRule(offer_id, AudienceRule(), None, Schedule(), w.loc(offer_node)),)
        path = f"{path}.eligibility"
        if isinstance(node, SequenceNode):
            rules: list[EligibilityRule] = []
            for index, item in enumerate(w.sequence(node, path) or []):
                rule = self._rule(item, f"{path}[{index}]", None)
                if rule is None:
                    continue
                if any(r.name == rule.name for r in rules):
                    w.error(item, f"{path}[{index}].name", f"duplicate rule name {rule.name!r}")
                    continue
                rules.append(rule)
            return tuple(rules)
        rule = self._rule(node, path, offer_id)
        return (rule,) if rule is not None else ()

    def _rule(self, node: Node, path: str, default_name: str | None) -> EligibilityRule | None:
        w = self.w
        spec = RULE if default_name else NAMED_RULE
        fields = w.mapping(node, path, spec.allowed, spec.required)
        if fields is None:
            return None
        name = default_name
        if "name" in fields:
            name = w.string(fields["name"], f"{path}.name", ID_PATTERN, "rule name")
        audiences = self._audiences(fields["audiences"], f"{path}.audiences") if "audiences" in fields else None
        condition: Condition | None = None
        if "conditions" in fields:
            condition = self.conditions.condition(fields["conditions"], f"{path}.conditions")
        schedule = self._schedule(fields["schedule"], f"{path}.schedule") if "schedule" in fields else Schedule()
        if name is None:
            return None
        return EligibilityRule(name, audiences or AudienceRule(), condition, schedule, w.loc(node))

    def _audiences(self, node: Node, path: str) -> AudienceRule | None:
        w = self.w
        fields = w.mapping(node, path, AUDIENCES.allowed)
        if fields is None:
            return None
        lists: dict[str, tuple[str, ...]] = {}
        for key, value_node in fields.items():
            lists[key] = w.unique_strings(value_node, f"{path}.{key}", AUDIENCE_PATTERN, "audience id") or ()
        required = set(lists.get("all", ())) | set(lists.get("any", ()))
        for audience in lists.get("none", ()):
            if audience in required:
                w.error(fields["none"], f"{path}.none", f"audience {audience!r} is both required and excluded")
        return AudienceRule(lists.get("all", ()), lists.get("any", ()), lists.get("none", ()))

    def _schedule(self, node: Node, path: str) -> Schedule:
        w = self.w
        fields = w.mapping(node, path, SCHEDULE.allowed)
        if not fields:
            if fields is not None:
                w.error(node, path, "needs a start, an end, or both")
            return Schedule()
        start = w.timestamp(fields["start"], f"{path}.start") if "start" in fields else None
        end = w.timestamp(fields["end"], f"{path}.end") if "end" in fields else None
        if start is not None and end is not None and end <= start:
            w.error(fields["end"], f"{path}.end", "end is not after start")
        return Schedule(start, end)
