"""Score formulas: a tiny arithmetic language over numbers, parsed into a tree (never ``eval``).

Grammar (usual precedence, left-associative)::

    formula    := comparison
    comparison := sum [("<" | "<=" | ">" | ">=" | "==" | "!=") sum]
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := "-" unary | atom
    atom       := number | reference | ("min" | "max") "(" formula ("," formula)* ")" | "(" formula ")"
    reference  := ("context" | "offer" | "profile") "." name

The multiplication, division and minus signs (U+00D7, U+00F7, U+2212) are
accepted for ``*``, ``/`` and ``-``. A comparison
is 1 when true, 0 when false. Every value is a number: a reference to an
attribute that is missing or not a number, a division by zero, or a result
that is not finite makes the whole score *undefined* (``None``); an offer
with an undefined score ranks after the scored ones of its priority.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from decision.rules.patterns import PROFILE_SCOPE

MAX_FORMULA_CHARS = 2000
MAX_DEPTH = 32
SCOPES = ("context", "offer", "profile")
FUNCTIONS: dict[str, Callable[..., float]] = {"min": min, "max": max}

# What a formula reads: context values as the request sent them, offer attributes as numbers.
Values = Mapping[str, object]
Evaluator = Callable[[Values, Mapping[str, float]], float | None]


class FormulaError(ValueError):
    """A formula that does not parse; ``column`` is 1-based."""

    def __init__(self, column: int, reason: str) -> None:
        self.column = column
        self.reason = reason
        super().__init__(f"column {column}: {reason}")


@dataclass(frozen=True, slots=True)
class Number:
    value: float


@dataclass(frozen=True, slots=True)
class Reference:
    scope: str  # "context", "offer" or "profile"
    name: str


@dataclass(frozen=True, slots=True)
class Negate:
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Call:
    function: str
    args: tuple[Node, ...]


Node = Number | Reference | Negate | Binary | Call


@dataclass(frozen=True, slots=True)
class Formula:
    text: str
    root: Node
    context_refs: frozenset[str]
    offer_refs: frozenset[str]
    profile_refs: frozenset[str]
    _evaluate: Evaluator = field(repr=False, compare=False)

    def evaluate(self, context: Values, offer_attributes: Mapping[str, float]) -> float | None:
        """The score, or None when it is undefined (missing attribute, division by zero, overflow)."""
        value = self._evaluate(context, offer_attributes)
        return value if value is not None and math.isfinite(value) else None


_TOKEN = re.compile(
    r"\s*(?:(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_.:]*)"
    "|(?P<op><=|>=|==|!=|[-+*/<>(),\u00d7\u00f7\u2212]))"
)
_SYNONYMS = {"\u00d7": "*", "\u00f7": "/", "\u2212": "-"}


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # number, name, op, end
    text: str
    column: int


def _tokens(text: str) -> list[_Token]:
    result: list[_Token] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            result.append(_Token("end", "", position + 1))
            return result
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise FormulaError(position + 1, f"unexpected character {text[position]!r}")
        kind = match.lastgroup or "op"
        value = match.group(kind)
        start = match.start(kind)
        result.append(_Token(kind, _SYNONYMS.get(value, value), start + 1))
        position = match.end()


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.index = 0

    @property
    def current(self) -> _Token:
        return self.tokens[self.index]

    def take(self, *texts: str) -> _Token | None:
        token = self.current
        if token.kind == "op" and token.text in texts:
            self.index += 1
            return token
        return None

    def expect(self, text: str) -> None:
        if self.take(text) is None:
            raise FormulaError(self.current.column, f"expected {text!r}, found {self._describe(self.current)}")

    @staticmethod
    def _describe(token: _Token) -> str:
        return "the end of the formula" if token.kind == "end" else repr(token.text)

    def parse(self) -> Node:
        node = self.comparison(0)
        if self.current.kind != "end":
            raise FormulaError(self.current.column, f"unexpected {self._describe(self.current)}")
        return node

    def comparison(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise FormulaError(self.current.column, f"nested deeper than {MAX_DEPTH} levels")
        left = self.sum(depth)
        token = self.take("<", "<=", ">", ">=", "==", "!=")
        if token is None:
            return left
        right = self.sum(depth)
        if self.current.kind == "op" and self.current.text in ("<", "<=", ">", ">=", "==", "!="):
            raise FormulaError(self.current.column, "comparisons do not chain; use parentheses")
        return Binary(token.text, left, right)

    def sum(self, depth: int) -> Node:
        node = self.product(depth)
        while (token := self.take("+", "-")) is not None:
            node = Binary(token.text, node, self.product(depth))
        return node

    def product(self, depth: int) -> Node:
        node = self.unary(depth)
        while (token := self.take("*", "/")) is not None:
            node = Binary(token.text, node, self.unary(depth))
        return node

    def unary(self, depth: int) -> Node:
        if self.take("-") is not None:
            if depth > MAX_DEPTH:
                raise FormulaError(self.current.column, f"nested deeper than {MAX_DEPTH} levels")
            return Negate(self.unary(depth + 1))
        return self.atom(depth)

    def atom(self, depth: int) -> Node:
        token = self.current
        if token.kind == "number":
            self.index += 1
            value = float(token.text)
            if not math.isfinite(value):
                raise FormulaError(token.column, f"number {token.text} is too large")
            return Number(value)
        if token.kind == "name":
            self.index += 1
            if token.text in FUNCTIONS:
                return self.call(token, depth)
            scope, dot, name = token.text.partition(".")
            if scope not in SCOPES or not dot:
                raise FormulaError(
                    token.column,
                    f"unknown name {token.text!r}: expected context.<attribute>, offer.<attribute>, "
                    "profile.<attribute>, min or max",
                )
            if not name:
                raise FormulaError(token.column, f"{scope}. needs an attribute name")
            return Reference(scope, name)
        if self.take("(") is not None:
            node = self.comparison(depth + 1)
            self.expect(")")
            return node
        raise FormulaError(token.column, f"expected a number, a reference or '(', found {self._describe(token)}")

    def call(self, name: _Token, depth: int) -> Node:
        self.expect("(")
        args = [self.comparison(depth + 1)]
        while self.take(",") is not None:
            args.append(self.comparison(depth + 1))
        self.expect(")")
        return Call(name.text, tuple(args))


def parse_formula(text: str) -> Formula:
    """Parse a formula. Raises FormulaError (with a column) when it does not parse."""
    if len(text) > MAX_FORMULA_CHARS:
        raise FormulaError(1, f"longer than {MAX_FORMULA_CHARS} characters")
    if not text.strip():
        raise FormulaError(1, "the formula is empty")
    root = _Parser(text).parse()
    refs: dict[str, set[str]] = {scope: set() for scope in SCOPES}
    _collect(root, refs)
    context, offer, profile = (frozenset(refs[scope]) for scope in SCOPES)
    return Formula(text, root, context, offer, profile, _compile(root))


def _collect(node: Node, refs: dict[str, set[str]]) -> None:
    if isinstance(node, Reference):
        refs[node.scope].add(node.name)
    elif isinstance(node, Negate):
        _collect(node.operand, refs)
    elif isinstance(node, Binary):
        _collect(node.left, refs)
        _collect(node.right, refs)
    elif isinstance(node, Call):
        for arg in node.args:
            _collect(arg, refs)


def _divide(left: float, right: float) -> float | None:
    return None if right == 0 else left / right


def _truth(test: Callable[[float, float], bool]) -> Callable[[float, float], float]:
    return lambda left, right: 1.0 if test(left, right) else 0.0


_BINARY: dict[str, Callable[[float, float], float | None]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": _divide,
    "<": _truth(operator.lt),
    "<=": _truth(operator.le),
    ">": _truth(operator.gt),
    ">=": _truth(operator.ge),
    "==": _truth(operator.eq),
    "!=": _truth(operator.ne),
}


def _compile(node: Node) -> Evaluator:
    """Turn the tree into nested closures once, at load time."""
    if isinstance(node, Number):
        constant = node.value
        return lambda _c, _o: constant
    if isinstance(node, Reference):
        name = node.name
        if node.scope == "offer":
            return lambda _c, offer: offer.get(name)
        if node.scope == "profile":
            name = PROFILE_SCOPE + name  # profile attributes are in the context the rules see

        def context_value(context: Values, _o: Mapping[str, float]) -> float | None:
            value = context.get(name)
            # Typed like conditions: only numbers are numbers (no bools, no numeric strings).
            return value if isinstance(value, float | int) and not isinstance(value, bool) else None

        return context_value
    if isinstance(node, Negate):
        inner = _compile(node.operand)

        def negate(context: Values, offer: Mapping[str, float]) -> float | None:
            value = inner(context, offer)
            return None if value is None else -value

        return negate
    if isinstance(node, Binary):
        left, right, apply = _compile(node.left), _compile(node.right), _BINARY[node.op]

        def binary(context: Values, offer: Mapping[str, float]) -> float | None:
            a = left(context, offer)
            if a is None:
                return None
            b = right(context, offer)
            if b is None:
                return None
            result = apply(a, b)
            # inf - inf is nan, and nan compares false: stop at the first non-finite value.
            return result if result is not None and math.isfinite(result) else None

        return binary
    args = tuple(_compile(arg) for arg in node.args)
    function = FUNCTIONS[node.function]

    def call(context: Values, offer: Mapping[str, float]) -> float | None:
        values = [arg(context, offer) for arg in args]
        if any(v is None for v in values):
            return None
        return float(function(values))

    return call
