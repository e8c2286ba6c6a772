"""An offer's ``content:`` at load time: JSON once, and its placeholders parsed and checked (file:line).

Placeholders (decision.rules.templates) may read ``profile.<name>`` declared under
``profile_attributes:`` and ``context.<name>`` (declared under ``attributes:`` when
that section is given). ``escape`` and ``on_missing`` are the offer's own options.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from decision.rules.patterns import PROFILE_SCOPE
from decision.rules.suggest import did_you_mean
from decision.rules.templates import (
    Escape,
    OnMissing,
    Placeholder,
    Shape,
    TemplateError,
    has_placeholders,
    parse_template,
)
from decision.rules.types import AttrType, ProfileAttrType
from decision.rules.walker import Walker, kind


class ContentReader:
    def __init__(
        self,
        w: Walker,
        attributes: Mapping[str, AttrType],
        declared: bool,
        profile_attributes: Mapping[str, ProfileAttrType],
    ) -> None:
        self.w = w
        self.attributes = attributes
        self.declared = declared
        self.profile_attributes = profile_attributes

    def content(self, node: Node, path: str) -> tuple[dict[str, object], str, Shape | None]:
        """(content, its JSON, its shape with templates — None when it has no placeholder)."""
        w = self.w
        if not isinstance(node, MappingNode):
            w.error(node, path, f"must be a mapping, got {kind(node)}")
            return {}, "{}", None
        value = w.value(node)
        try:
            encoded = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
        except TypeError as exc:
            w.error(node, path, f"cannot be represented as JSON: {exc}")
            return {}, "{}", None
        assert isinstance(value, dict)
        found = [False]
        shape = self._shape(node, value, path, found)
        return value, encoded.decode(), shape if found[0] else None

    def options(self, fields: Mapping[str, Node], path: str) -> tuple[Escape, OnMissing]:
        """An offer's ``escape`` and ``on_missing`` (checked even without placeholders: a typo is reported)."""
        escape = self._option(fields, path, "escape", Escape, Escape.NONE)
        on_missing = self._option(fields, path, "on_missing", OnMissing, OnMissing.BLANK)
        return Escape(escape), OnMissing(on_missing)

    def _option(
        self, fields: Mapping[str, Node], path: str, name: str, choices: type[Escape] | type[OnMissing], default: str
    ) -> str:
        if name not in fields:
            return default
        return self.w.choice(fields[name], f"{path}.{name}", choices) or default

    def _shape(self, node: Node, value: object, path: str, found: list[bool]) -> Shape:
        """``value`` with each string holding ``{{`` replaced by its parsed template."""
        if isinstance(node, MappingNode) and isinstance(value, dict):
            shape: dict[object, Shape] = {}
            for key_node, value_node in node.value:
                key = self.w.value(key_node)
                if key in value:  # a merge key (<<) or a duplicate: the constructed value decides
                    shape[key] = self._shape(value_node, value[key], f"{path}.{key}", found)
            return {**value, **shape}
        if isinstance(node, SequenceNode) and isinstance(value, list):
            pairs = enumerate(zip(node.value, value, strict=True))
            return [self._shape(n, v, f"{path}[{i}]", found) for i, (n, v) in pairs]
        if isinstance(node, ScalarNode) and isinstance(value, str) and has_placeholders(value):
            try:
                template = parse_template(value)
            except TemplateError as exc:
                self.w.error(node, path, f"template column {exc.column}: {exc.reason}")
                return value
            for placeholder in template.placeholders:
                self._check(node, path, placeholder)
            found[0] = True
            return template
        return value

    def _check(self, node: Node, path: str, placeholder: Placeholder) -> None:
        key, where = placeholder.key, f"template column {placeholder.column}"
        if key.startswith(PROFILE_SCOPE):
            name = key[len(PROFILE_SCOPE) :]
            if name not in self.profile_attributes:
                hint = did_you_mean(name, self.profile_attributes, scope=PROFILE_SCOPE)
                reason = f"unknown attribute {placeholder.reference} (not declared under profile_attributes:){hint}"
                self.w.error(node, path, f"{where}: {reason}")
        elif self.declared and key not in self.attributes:
            hint = did_you_mean(key, self.attributes, scope="context.")
            reason = f"unknown attribute {placeholder.reference} (not declared under attributes:){hint}"
            self.w.error(node, path, f"{where}: {reason}")
