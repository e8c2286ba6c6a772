"""Parse a YAML ruleset into a validated :class:`Ruleset`, or report every problem.

The YAML is read as a node tree (not as plain Python values) so that every
problem can name the line it comes from. Nothing in a rules file is ever
evaluated as code: scalars are constructed with PyYAML's safe constructor only.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import orjson
import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from decision.rules import policies, ranking, yaml_guard
from decision.rules.errors import Problem, RulesetInvalid, Severity
from decision.rules.patterns import ATTRIBUTE_PATTERN, AUDIENCE_PATTERN, ID_PATTERN
from decision.rules.types import (
    AllOf,
    AnyOf,
    AttrType,
    AudienceRule,
    Condition,
    ContactPolicy,
    EligibilityRule,
    Location,
    Not,
    Offer,
    Op,
    Placement,
    Predicate,
    Ruleset,
    Scalar,
    Schedule,
)

CONTEXT_PREFIX = "context."
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_CONDITION_DEPTH = 8
MAX_ITEMS_LIMIT = 100


class _Walker:
    """Reads YAML nodes into typed values, collecting problems instead of raising."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self._constructor = SafeConstructor()

    def loc(self, node: Node) -> Location:
        return Location(self.file, node.start_mark.line + 1)

    def error(self, node: Node, path: str, reason: str) -> None:
        self.problems.append(Problem(self.loc(node), path or "(document)", reason))

    def value(self, node: Node) -> object:
        try:
            return self._constructor.construct_object(node, deep=True)
        except ConstructorError as exc:  # e.g. an unknown !tag
            return _Unconstructible(str(exc.problem))

    def mapping(
        self, node: Node, path: str, allowed: frozenset[str], required: frozenset[str] = frozenset()
    ) -> dict[str, Node] | None:
        if not isinstance(node, MappingNode):
            self.error(node, path, f"must be a mapping, got {_kind(node)}")
            return None
        fields: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key = self.value(key_node)
            if not isinstance(key, str):
                self.error(key_node, path, f"keys must be strings, got {key!r}")
                continue
            if key in fields:
                self.error(key_node, _join(path, key), "duplicate key")
                continue
            if key not in allowed:
                self.error(key_node, _join(path, key), f"unknown field (expected one of: {', '.join(sorted(allowed))})")
                continue
            fields[key] = value_node
        for key in sorted(required - fields.keys()):
            self.error(node, _join(path, key), "required field is missing")
        return fields

    def sequence(self, node: Node, path: str, *, allow_empty: bool = False) -> list[Node] | None:
        if not isinstance(node, SequenceNode):
            self.error(node, path, f"must be a list, got {_kind(node)}")
            return None
        if not node.value and not allow_empty:
            self.error(node, path, "must not be empty")
            return None
        return list(node.value)

    def string(self, node: Node, path: str, pattern: re.Pattern[str] | None = None, what: str = "") -> str | None:
        value = self.value(node)
        if not isinstance(node, ScalarNode) or not isinstance(value, str):
            self.error(node, path, f"must be a string, got {_describe(value, node)}")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.error(node, path, f"invalid {what or 'value'} {value!r}")
            return None
        return value

    def integer(self, node: Node, path: str, low: int, high: int) -> int | None:
        value = self.value(node)
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(node, path, f"must be an integer, got {_describe(value, node)}")
            return None
        if not low <= value <= high:
            self.error(node, path, f"must be between {low} and {high}, got {value}")
            return None
        return value

    def boolean(self, node: Node, path: str) -> bool | None:
        value = self.value(node)
        if not isinstance(value, bool):
            self.error(node, path, f"must be true or false, got {_describe(value, node)}")
            return None
        return value

    def timestamp(self, node: Node, path: str) -> float | None:
        raw = node.value if isinstance(node, ScalarNode) else None
        if not isinstance(raw, str):
            self.error(node, path, f"must be an ISO 8601 timestamp, got {_kind(node)}")
            return None
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            self.error(node, path, f"invalid ISO 8601 timestamp {raw!r}")
            return None
        if moment.tzinfo is None:
            self.error(node, path, f"timestamp {raw!r} needs a time zone (e.g. Z or +01:00)")
            return None
        return moment.timestamp()

    def unique_strings(
        self, node: Node, path: str, pattern: re.Pattern[str], what: str, *, allow_empty: bool = False
    ) -> tuple[str, ...] | None:
        items = self.sequence(node, path, allow_empty=allow_empty)
        if items is None:
            return None
        result: list[str] = []
        for index, item in enumerate(items):
            value = self.string(item, f"{path}[{index}]", pattern, what)
            if value is None:
                continue
            if value in result:
                self.error(item, f"{path}[{index}]", f"duplicate {what} {value!r}")
                continue
            result.append(value)
        return tuple(result)


class _Unconstructible:
    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"<{self.reason}>"


def _kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return f"{node.value!r}"


def _describe(value: object, node: Node) -> str:
    if isinstance(node, MappingNode | SequenceNode):
        return _kind(node)
    if value is None:
        return "nothing (null)"
    return f"{type(value).__name__} {value!r}"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


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
    walker = _Walker(file)
    if len(data) > MAX_FILE_BYTES:
        walker.problems.append(Problem(Location(file, 0), "file", f"larger than {MAX_FILE_BYTES} bytes"))
        return None, walker.problems
    try:
        text = data.decode("utf-8")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        walker.problems.append(Problem(Location(file, line), "file", "not valid UTF-8"))
        return None, walker.problems
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        walker.problems.append(Problem(Location(file, line), "file", f"invalid YAML: {exc.problem or exc}"))
        return None, walker.problems
    except yaml.YAMLError as exc:
        walker.problems.append(Problem(Location(file, 0), "file", f"invalid YAML: {exc}"))
        return None, walker.problems
    except RecursionError:  # PyYAML composes recursively: report where the nesting gets too deep
        reason = f"nested deeper than {yaml_guard.MAX_NESTING} levels"
        walker.problems.append(Problem(Location(file, yaml_guard.too_deep_line(text)), "file", reason))
        return None, walker.problems
    if root is None:
        walker.problems.append(Problem(Location(file, 1), "file", "the ruleset is empty"))
        return None, walker.problems
    if shape := yaml_guard.shape_problem(root):  # deep nesting, alias bombs: refused before any walk
        walker.problems.append(Problem(Location(file, shape[0]), "file", shape[1]))
        return None, walker.problems
    ruleset = _Builder(walker, data).build(root)
    has_errors = any(p.severity is Severity.ERROR for p in walker.problems)
    return (None if has_errors else ruleset), walker.problems


class _Builder:
    def __init__(self, walker: _Walker, data: bytes) -> None:
        self.w = walker
        self.data = data
        self.attributes: dict[str, AttrType] = {}
        self.declared_attributes = False
        self.offer_ids_seen: set[str] = set()
        self.time_zone = "UTC"

    def build(self, root: Node) -> Ruleset | None:
        w = self.w
        top = w.mapping(
            root,
            "",
            frozenset({"version", "settings", "attributes", "placements", "offers", "contact_policies"}),
            frozenset({"placements", "offers"}),
        )
        if top is None:
            return None
        version = None
        if "version" in top:
            version = w.string(top["version"], "version", ID_PATTERN, "version")
        if version is None:
            version = "sha256:" + hashlib.sha256(self.data).hexdigest()[:12]
        allow_duplicates = False
        if "settings" in top:
            settings = w.mapping(top["settings"], "settings", frozenset({"allow_duplicate_propositions", "time_zone"}))
            if settings and "allow_duplicate_propositions" in settings:
                allow_duplicates = bool(
                    w.boolean(settings["allow_duplicate_propositions"], "settings.allow_duplicate_propositions")
                )
            if settings and "time_zone" in settings:
                self.time_zone = policies.time_zone(w, settings["time_zone"], "settings.time_zone") or "UTC"
        if "attributes" in top:
            self._attributes(top["attributes"])
        placements = self._placements(top["placements"]) if "placements" in top else {}
        offers = self._offers(top["offers"], placements) if "offers" in top else {}
        self._check_fallbacks(placements, offers)
        contact_policies: tuple[ContactPolicy, ...] = ()
        if "contact_policies" in top:
            channels = frozenset(c for p in placements.values() for c in p.channels)
            contact_policies = policies.contact_policies(
                w, top["contact_policies"], frozenset(placements), channels, self.time_zone
            )
        self._check_delivery_controls(placements, offers)
        return Ruleset(
            version=version,
            placements=placements,
            offers=offers,
            attributes=dict(self.attributes),
            allow_duplicates=allow_duplicates,
            source=self.w.file,
            contact_policies=contact_policies,
            time_zone=self.time_zone,
        )

    # -- attributes -------------------------------------------------------
    def _attributes(self, node: Node) -> None:
        w = self.w
        self.declared_attributes = True
        if not isinstance(node, MappingNode):
            w.error(node, "attributes", f"must be a mapping of attribute name to type, got {_kind(node)}")
            return
        types = ", ".join(t.value for t in AttrType)
        for key_node, value_node in node.value:
            name = w.string(key_node, "attributes", ATTRIBUTE_PATTERN, "attribute name")
            if name is None:
                continue
            path = f"attributes.{name}"
            if name in self.attributes:
                w.error(key_node, path, "duplicate attribute")
                continue
            kind = w.string(value_node, path)
            if kind is None:
                continue
            try:
                self.attributes[name] = AttrType(kind)
            except ValueError:
                w.error(value_node, path, f"unknown type {kind!r} (expected one of: {types})")

    # -- placements -------------------------------------------------------
    def _placements(self, node: Node) -> dict[str, Placement]:
        w = self.w
        result: dict[str, Placement] = {}
        for index, item in enumerate(w.sequence(node, "placements") or []):
            path = f"placements[{index}]"
            fields = w.mapping(
                item,
                path,
                frozenset({"id", "channels", "max_items", "fallback", "description", "score", "experiment", "ranking"}),
                frozenset({"id", "channels", "fallback"}),
            )
            if fields is None:
                continue
            pid = w.string(fields["id"], f"{path}.id", ID_PATTERN, "placement id") if "id" in fields else None
            if pid is not None:
                path = f"placements[{pid}]"
                if pid in result:
                    w.error(fields["id"], f"{path}.id", f"duplicate placement id {pid!r}")
                    pid = None
            channels = (
                w.unique_strings(fields["channels"], f"{path}.channels", ID_PATTERN, "channel")
                if "channels" in fields
                else None
            )
            max_items = 1
            if "max_items" in fields:
                max_items = w.integer(fields["max_items"], f"{path}.max_items", 1, MAX_ITEMS_LIMIT) or 1
            fallback = (
                w.string(fields["fallback"], f"{path}.fallback", ID_PATTERN, "offer id")
                if "fallback" in fields
                else None
            )
            if "description" in fields:
                w.string(fields["description"], f"{path}.description")
            scores = policies.ScoreReader(w, self.attributes, self.declared_attributes)
            score = scores.formula(fields["score"], f"{path}.score") if "score" in fields else None
            experiment = (
                ranking.experiment(w, fields["experiment"], f"{path}.experiment", for_offer=False, scores=scores)
                if "experiment" in fields
                else None
            )
            learned = ranking.ranking(w, fields["ranking"], f"{path}.ranking") if "ranking" in fields else None
            if pid is None or channels is None or fallback is None:
                continue
            result[pid] = Placement(
                pid, frozenset(channels), max_items, fallback, w.loc(item), score=score, experiment=experiment,
                ranking=learned,
            )  # fmt: skip
        return result

    # -- offers -----------------------------------------------------------
    def _offers(self, node: Node, placements: dict[str, Placement]) -> dict[str, Offer]:
        w = self.w
        result: dict[str, Offer] = {}
        for index, item in enumerate(w.sequence(node, "offers") or []):
            path = f"offers[{index}]"
            fields = w.mapping(
                item,
                path,
                frozenset(
                    {
                        "id",
                        "placements",
                        "priority",
                        "content",
                        "eligibility",
                        "description",
                        "attributes",
                        "caps",
                        "suppress",
                        "experiment",
                    }
                ),
                frozenset({"id", "placements"}),
            )
            if fields is None:
                continue
            oid = w.string(fields["id"], f"{path}.id", ID_PATTERN, "offer id") if "id" in fields else None
            if oid is not None:
                path = f"offers[{oid}]"
                self.offer_ids_seen.add(oid)
                if oid in result:
                    w.error(fields["id"], f"{path}.id", f"duplicate offer id {oid!r}")
                    oid = None
            offer_placements = (
                w.unique_strings(fields["placements"], f"{path}.placements", ID_PATTERN, "placement id")
                if "placements" in fields
                else None
            )
            for p_index, pname in enumerate(offer_placements or ()):
                if pname not in placements:
                    w.error(
                        fields["placements"].value[p_index],
                        f"{path}.placements[{p_index}]",
                        f"unknown placement {pname!r}",
                    )
            priority = 0
            if "priority" in fields:
                priority = w.integer(fields["priority"], f"{path}.priority", -1_000_000, 1_000_000) or 0
            content: dict[str, object] = {}
            content_json = "{}"
            if "content" in fields:
                content, content_json = self._content(fields["content"], f"{path}.content")
            if "description" in fields:
                w.string(fields["description"], f"{path}.description")
            rules: tuple[EligibilityRule, ...] = ()
            if oid is not None:
                rules = self._eligibility(fields.get("eligibility"), item, path, oid)
            attributes = (
                policies.offer_attributes(w, fields["attributes"], f"{path}.attributes")
                if "attributes" in fields
                else {}
            )
            caps = policies.caps(w, fields["caps"], f"{path}.caps", self.time_zone) if "caps" in fields else ()
            suppression = (
                policies.suppression(w, fields["suppress"], f"{path}.suppress") if "suppress" in fields else None
            )
            experiment = (
                ranking.experiment(w, fields["experiment"], f"{path}.experiment", for_offer=True)
                if "experiment" in fields
                else None
            )
            if oid is None or offer_placements is None:
                continue
            result[oid] = Offer(
                id=oid,
                placements=offer_placements,
                priority=priority,
                content=content,
                content_json=content_json,
                rules=rules,
                position=len(result),
                location=w.loc(item),
                caps=caps,
                suppression=suppression,
                experiment=experiment,
                attributes=attributes,
            )
        return result

    def _content(self, node: Node, path: str) -> tuple[dict[str, object], str]:
        w = self.w
        if not isinstance(node, MappingNode):
            w.error(node, path, f"must be a mapping, got {_kind(node)}")
            return {}, "{}"
        value = w.value(node)
        try:
            encoded = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
        except TypeError as exc:
            w.error(node, path, f"cannot be represented as JSON: {exc}")
            return {}, "{}"
        assert isinstance(value, dict)
        return value, encoded.decode()

    def _eligibility(
        self, node: Node | None, offer_node: Node, path: str, offer_id: str
    ) -> tuple[EligibilityRule, ...]:
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
        allowed = frozenset({"name", "audiences", "conditions", "schedule"})
        fields = w.mapping(node, path, allowed, frozenset() if default_name else frozenset({"name"}))
        if fields is None:
            return None
        name = default_name
        if "name" in fields:
            name = w.string(fields["name"], f"{path}.name", ID_PATTERN, "rule name")
        audiences = self._audiences(fields["audiences"], f"{path}.audiences") if "audiences" in fields else None
        condition: Condition | None = None
        if "conditions" in fields:
            condition = self._conditions(fields["conditions"], f"{path}.conditions")
        schedule = self._schedule(fields["schedule"], f"{path}.schedule") if "schedule" in fields else Schedule()
        if name is None:
            return None
        return EligibilityRule(name, audiences or AudienceRule(), condition, schedule, w.loc(node))

    def _audiences(self, node: Node, path: str) -> AudienceRule | None:
        w = self.w
        fields = w.mapping(node, path, frozenset({"all", "any", "none"}))
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
        fields = w.mapping(node, path, frozenset({"start", "end"}))
        if not fields:
            if fields is not None:
                w.error(node, path, "needs a start, an end, or both")
            return Schedule()
        start = w.timestamp(fields["start"], f"{path}.start") if "start" in fields else None
        end = w.timestamp(fields["end"], f"{path}.end") if "end" in fields else None
        if start is not None and end is not None and end <= start:
            w.error(fields["end"], f"{path}.end", "end is not after start")
        return Schedule(start, end)

    # -- conditions -------------------------------------------------------
    def _conditions(self, node: Node, path: str, depth: int = 0) -> Condition | None:
        w = self.w
        if depth > MAX_CONDITION_DEPTH:
            w.error(node, path, f"conditions nested deeper than {MAX_CONDITION_DEPTH} levels")
            return None
        if isinstance(node, SequenceNode):  # a bare list means "all of"
            children = self._children(node, path, depth)
            return AllOf(children) if children is not None else None
        if not isinstance(node, MappingNode) or len(node.value) != 1:
            w.error(
                node,
                path,
                "a condition is a mapping with exactly one key: and, or, not, or context.<attribute>",
            )
            return None
        key_node, value_node = node.value[0]
        key = w.value(key_node)
        if key in ("and", "or"):
            children = self._children(value_node, f"{path}.{key}", depth)
            if children is None:
                return None
            return AllOf(children) if key == "and" else AnyOf(children)
        if key == "not":
            child = self._conditions(value_node, f"{path}.not", depth + 1)
            return Not(child) if child is not None else None
        if isinstance(key, str) and key.startswith(CONTEXT_PREFIX):
            return self._predicates(key_node, value_node, f"{path}.{key}", key[len(CONTEXT_PREFIX) :])
        w.error(key_node, path, f"unknown condition {key!r}: expected and, or, not, or context.<attribute>")
        return None

    def _children(self, node: Node, path: str, depth: int) -> tuple[Condition, ...] | None:
        items = self.w.sequence(node, path)
        if items is None:
            return None
        children = [self._conditions(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(items)]
        if any(child is None for child in children):
            return None
        return tuple(c for c in children if c is not None)

    def _predicates(self, key_node: Node, node: Node, path: str, attribute: str) -> Condition | None:
        w = self.w
        if not ATTRIBUTE_PATTERN.fullmatch(attribute):
            w.error(key_node, path, f"invalid attribute name {attribute!r}")
            return None
        if self.declared_attributes and attribute not in self.attributes:
            w.error(key_node, path, f"unknown attribute {attribute!r} (not declared under attributes:)")
            return None
        ops = ", ".join(op.value for op in Op)
        if not isinstance(node, MappingNode) or not node.value:
            w.error(node, path, f"must map an operator ({ops}) to its operand, e.g. {{gt: 100}}")
            return None
        predicates: list[Condition] = []
        seen: set[str] = set()
        for op_node, operand_node in node.value:
            name = w.value(op_node)
            op_path = f"{path}.{name}"
            if not isinstance(name, str) or name not in Op.__members__.values():
                w.error(op_node, op_path, f"unknown operator {name!r} (expected one of: {ops})")
                continue
            if name in seen:
                w.error(op_node, op_path, "duplicate operator")
                continue
            seen.add(name)
            predicate = self._predicate(attribute, Op(name), operand_node, op_path)
            if predicate is not None:
                predicates.append(predicate)
        if len(predicates) != len(node.value):
            return None
        return predicates[0] if len(predicates) == 1 else AllOf(tuple(predicates))

    def _predicate(self, attribute: str, op: Op, node: Node, path: str) -> Condition | None:
        w = self.w
        declared = self.attributes.get(attribute)
        loc = w.loc(node)
        if op is Op.EXISTS:
            present = w.boolean(node, path)
            if present is None:
                return None
            predicate = Predicate(attribute, Op.EXISTS, True, loc)
            return predicate if present else Not(predicate)
        if op in (Op.IN, Op.NOT_IN):
            items = w.sequence(node, path)
            if items is None:
                return None
            values = [self._scalar(item, f"{path}[{i}]", declared) for i, item in enumerate(items)]
            if any(v is None for v in values):
                return None
            return Predicate(attribute, op, tuple(v for v in values if v is not None), loc)
        if op in (Op.LT, Op.LE, Op.GT, Op.GE):
            value = self._scalar(node, path, declared, only=(float,))
            return Predicate(attribute, op, value, loc) if value is not None else None
        if op is Op.STARTS_WITH:
            value = self._scalar(node, path, declared, only=(str,))
            return Predicate(attribute, op, value, loc) if value is not None else None
        if op is Op.CONTAINS:
            # contains tests a substring of a string, or an item of a list.
            if declared is not None and declared not in (AttrType.STRING, AttrType.LIST):
                w.error(
                    node,
                    path,
                    f"type mismatch: contains needs a string or list attribute, "
                    f"context.{attribute} is declared {declared}",
                )
                return None
            value = self._scalar(node, path, None if declared is AttrType.LIST else declared)
            if value is not None and declared is AttrType.STRING and not isinstance(value, str):
                w.error(node, path, f"type mismatch: context.{attribute} is a string, operand is {_type_name(value)}")
                return None
            return Predicate(attribute, op, value, loc) if value is not None else None
        value = self._scalar(node, path, declared)
        return Predicate(attribute, op, value, loc) if value is not None else None

    def _scalar(
        self,
        node: Node,
        path: str,
        declared: AttrType | None,
        only: tuple[type, ...] | None = None,
    ) -> Scalar | None:
        w = self.w
        value = w.value(node)
        scalar: Scalar
        if isinstance(node, MappingNode | SequenceNode) or value is None or isinstance(value, _Unconstructible):
            w.error(node, path, f"type mismatch: expected a string, number or boolean, got {_describe(value, node)}")
            return None
        if isinstance(value, bool | str):
            scalar = value
        elif isinstance(value, int | float):
            if not math.isfinite(value):
                w.error(node, path, f"numbers must be finite, got {value!r}")
                return None
            scalar = float(value)
        else:  # timestamps, binary: compare as the text that was written
            scalar = str(node.value)
        if (only is not None and not isinstance(scalar, only)) or (only == (float,) and isinstance(scalar, bool)):
            expected = " or ".join(_TYPE_NAMES[t] for t in only or ())
            w.error(node, path, f"type mismatch: expected a {expected}, got {_type_name(scalar)} {scalar!r}")
            return None
        if declared is not None and declared is not AttrType.LIST and _attr_type(scalar) is not declared:
            w.error(
                node,
                path,
                f"type mismatch: attribute is declared {declared}, operand is {_type_name(scalar)} {scalar!r}",
            )
            return None
        if declared is AttrType.LIST:
            w.error(node, path, "type mismatch: a list attribute can only be tested with contains or exists")
            return None
        return scalar

    def _check_fallbacks(self, placements: dict[str, Placement], offers: dict[str, Offer]) -> None:
        for placement in placements.values():
            path = f"placements[{placement.id}].fallback"
            fallback = offers.get(placement.fallback)
            if fallback is None:
                if placement.fallback not in self.offer_ids_seen:  # an invalid offer has its own errors
                    self.w.problems.append(
                        Problem(placement.location, path, f"fallback offer {placement.fallback!r} does not exist")
                    )
            elif placement.id not in fallback.placements:
                self.w.problems.append(
                    Problem(
                        placement.location,
                        path,
                        f"fallback offer {placement.fallback!r} does not list placement {placement.id!r}",
                    )
                )

    def _check_delivery_controls(self, placements: dict[str, Placement], offers: dict[str, Offer]) -> None:
        """Cross-checks of caps, experiments and formulas that need the whole ruleset."""
        fallbacks = {p.fallback for p in placements.values()}
        experiments: dict[str, Location] = {}
        for offer in offers.values():
            path = f"offers[{offer.id}]"
            if offer.id in fallbacks and (offer.caps or offer.suppression or offer.experiment):
                what = "caps" if offer.caps else "suppress" if offer.suppression else "experiment"
                self.w.problems.append(
                    Problem(
                        offer.location,
                        f"{path}.{what}",
                        "a fallback offer is always served: it cannot be capped, suppressed or experimented on",
                    )
                )
            if offer.experiment is not None:
                self._unique_experiment(
                    offer.experiment.id, offer.experiment.location, f"{path}.experiment", experiments
                )
        for placement in placements.values():
            path = f"placements[{placement.id}]"
            if placement.experiment is not None:
                self._unique_experiment(
                    placement.experiment.id, placement.experiment.location, f"{path}.experiment", experiments
                )
            formulas = [(f"{path}.score", placement.score)]
            if placement.experiment is not None:
                formulas += [
                    (f"{path}.experiment.variants[{v.id}].score", v.score) for v in placement.experiment.variants
                ]
            known = {name for o in offers.values() if placement.id in o.placements for name in o.attributes}
            for formula_path, formula in formulas:
                for name in sorted(formula.offer_refs - known if formula is not None else ()):
                    self.w.problems.append(
                        Problem(
                            placement.location,
                            formula_path,
                            f"offer.{name}: no offer of placement {placement.id!r} has this attribute",
                        )
                    )

    def _unique_experiment(self, eid: str, location: Location, path: str, seen: dict[str, Location]) -> None:
        if eid in seen:
            self.w.problems.append(
                Problem(location, f"{path}.id", f"experiment id {eid!r} is also used at {seen[eid]}")
            )
        else:
            seen[eid] = location


_TYPE_NAMES: dict[type, str] = {float: "number", str: "string", bool: "boolean"}


def _attr_type(value: Scalar) -> AttrType:
    if isinstance(value, bool):
        return AttrType.BOOL
    if isinstance(value, str):
        return AttrType.STRING
    return AttrType.NUMBER


def _type_name(value: Scalar) -> str:
    return _attr_type(value).value


def iter_predicates(condition: Condition | None) -> Iterator[Predicate]:
    """Every predicate of a condition tree, depth first."""
    if condition is None:
        return
    if isinstance(condition, Predicate):
        yield condition
    elif isinstance(condition, Not):
        yield from iter_predicates(condition.child)
    else:
        for child in condition.children:
            yield from iter_predicates(child)
