"""Refuse YAML shapes that would exhaust the loader: deep nesting, alias bombs, self-containing aliases.

PyYAML composes nodes recursively, so a few thousand ``[`` exhaust Python's
stack; and aliases share nodes, so ten anchors of ten aliases each stand for
10^10 nodes once the content is serialized. These checks walk the composed
nodes (or, when composing itself ran out of stack, the parser's events)
without recursion, stop as soon as a limit is crossed, and say where.
"""

from __future__ import annotations

import yaml
from yaml.events import CollectionEndEvent, CollectionStartEvent
from yaml.nodes import MappingNode, Node, SequenceNode

# Far beyond any real ruleset, well within what the composer and the loader can recurse into.
MAX_NESTING = 64
# Nodes that aliases may add beyond those written in the file (shared conditions and content).
MAX_ALIAS_EXPANSION = 100_000


def too_deep_line(text: str, limit: int = MAX_NESTING) -> int:
    """The 1-based line where nesting first exceeds ``limit``; 0 if it never does (or the YAML is invalid first)."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > limit:
                    return 0 if event.start_mark is None else int(event.start_mark.line) + 1
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        return 0
    return 0


def shape_problem(root: Node) -> tuple[int, str] | None:
    """(1-based line, reason) of the first node that is nested too deeply or expands too far; None if fine."""
    seen: set[int] = set()
    expanded = 0
    stack: list[tuple[Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        line = int(node.start_mark.line) + 1
        if depth > MAX_NESTING:
            return line, f"nested deeper than {MAX_NESTING} levels (or an alias that contains itself)"
        expanded += 1
        seen.add(id(node))
        if expanded > len(seen) + MAX_ALIAS_EXPANSION:
            return line, f"aliases expand to more than {MAX_ALIAS_EXPANSION} nodes beyond those written"
        if isinstance(node, SequenceNode):
            stack.extend((item, depth + 1) for item in node.value)
        elif isinstance(node, MappingNode):
            for key, value in node.value:
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
    return None
