"""A small, safe expression language for rule conditions (no ``eval``).

Grammar (lowest precedence first)::

    expr    := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | cmp
    cmp     := sum (("<" | "<=" | ">" | ">=" | "==" | "!=") sum)?
    sum     := prod (("+" | "-") prod)*
    prod    := unary (("*" | "/") unary)*
    unary   := "-" unary | atom
    atom    := NUMBER | NAME | NAME "(" [expr ("," expr)*] ")" | STRING | "(" expr ")"

``NAME`` may contain dots, so metric names are written as they are (``embedding.drift``).
Names are resolved by the caller (see :mod:`inferwatch.alerter.evaluation.evaluate`); a name without a
value raises :class:`MissingValue`, which the evaluator treats as "no data in this window".
Functions: ``abs``, ``min``, ``max``, ``metric("name")`` and ``ref("name")`` (for names with
characters the tokenizer does not accept).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from inferwatch.alerter.errors import ExpressionError

Value = float | bool | str
Resolver = Callable[[str], float]
"""Returns the value of a name, or raises :class:`MissingValue`."""


class MissingValue(LookupError):
    """A name in the expression has no value in this snapshot."""


_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"
    r"|(?P<str>\"[^\"]*\"|'[^']*')"
    r"|(?P<op><=|>=|==|!=|[<>+\-*/(),])"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_.@:]*))"
)
_KEYWORDS = {"and", "or", "not"}


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: int


def _tokenize(src: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    src = src.rstrip()
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if m is None or m.end() == pos:
            raise ExpressionError(f"unexpected character {src[pos:pos + 1]!r} at {pos} in {src!r}")
        group = m.lastgroup or ""
        text = m.group(group)
        kind = "kw" if group == "name" and text in _KEYWORDS else group
        out.append(_Tok(kind, text, m.start(group)))
        pos = m.end()
    out.append(_Tok("end", "", len(src)))
    return out


Node = Callable[[Resolver], Value]


def _num(v: Value) -> float:
    if isinstance(v, str):
        raise ExpressionError(f"a string ({v!r}) is not a number")
    return float(v)


_CMP: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def _div(a: float, b: float) -> float:
    if b == 0:
        # x/0 has no meaningful value for alerting; "no data" is safer than inf.
        raise MissingValue("division by zero")
    return a / b


_ARITH: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": _div,
}


def _or(a: Node, b: Node) -> Node:
    return lambda r: bool(a(r)) or bool(b(r))


def _and(a: Node, b: Node) -> Node:
    return lambda r: bool(a(r)) and bool(b(r))


def _binop(f: Callable[[float, float], Value], a: Node, b: Node) -> Node:
    return lambda r: f(_num(a(r)), _num(b(r)))


def _no_names(name: str) -> float:
    raise MissingValue(name)


class _Parser:
    def __init__(self, src: str) -> None:
        self.src = src
        self.toks = _tokenize(src)
        self.i = 0
        self.names: set[str] = set()

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def expect(self, text: str) -> None:
        t = self.take()
        if t.text != text:
            raise ExpressionError(f"expected {text!r} at {t.pos} in {self.src!r}, got {t.text or 'end'!r}")

    def parse(self) -> Node:
        node = self.or_()
        t = self.peek()
        if t.kind != "end":
            raise ExpressionError(f"unexpected {t.text!r} at {t.pos} in {self.src!r}")
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self.peek().text == "or":
            self.take()
            left, right = node, self.and_()
            node = _or(left, right)
        return node

    def and_(self) -> Node:
        node = self.not_()
        while self.peek().text == "and":
            self.take()
            left, right = node, self.not_()
            node = _and(left, right)
        return node

    def not_(self) -> Node:
        if self.peek().text == "not":
            self.take()
            inner = self.not_()
            return lambda r: not bool(inner(r))
        return self.cmp()

    def cmp(self) -> Node:
        node = self.sum()
        t = self.peek()
        if t.kind == "op" and t.text in _CMP:
            self.take()
            fn, left, right = _CMP[t.text], node, self.sum()
            node = _binop(fn, left, right)
            if self.peek().kind == "op" and self.peek().text in _CMP:
                raise ExpressionError(f"chained comparison at {self.peek().pos} in {self.src!r}; use 'and'")
        return node

    def sum(self) -> Node:
        node = self.prod()
        while self.peek().text in ("+", "-"):
            fn = _ARITH[self.take().text]
            left, right = node, self.prod()
            node = _binop(fn, left, right)
        return node

    def prod(self) -> Node:
        node = self.unary()
        while self.peek().text in ("*", "/"):
            fn = _ARITH[self.take().text]
            left, right = node, self.unary()
            node = _binop(fn, left, right)
        return node

    def unary(self) -> Node:
        if self.peek().text == "-":
            self.take()
            inner = self.unary()
            return lambda r: -_num(inner(r))
        return self.atom()

    def atom(self) -> Node:
        t = self.take()
        if t.kind == "num":
            v = float(t.text)
            return lambda r: v
        if t.kind == "str":
            s = t.text[1:-1]
            return lambda r: s
        if t.text == "(":
            node = self.or_()
            self.expect(")")
            return node
        if t.kind == "name":
            if self.peek().text == "(":
                return self.call(t)
            name = t.text
            self.names.add(name)
            return lambda r: r(name)
        raise ExpressionError(f"unexpected {t.text or 'end'!r} at {t.pos} in {self.src!r}")

    def call(self, t: _Tok) -> Node:
        self.expect("(")
        args: list[Node] = []
        if self.peek().text != ")":
            args.append(self.or_())
            while self.peek().text == ",":
                self.take()
                args.append(self.or_())
        self.expect(")")
        fn = t.text
        if fn == "abs" and len(args) == 1:
            a = args[0]
            return lambda r: abs(_num(a(r)))
        if fn in ("min", "max") and args:
            agg = min if fn == "min" else max
            return lambda r: agg(_num(a(r)) for a in args)
        if fn in ("metric", "ref") and len(args) == 1:
            a = args[0]
            prefix = "" if fn == "metric" else "ref:"
            # a literal argument is known now: record it so validation can list the metrics used
            try:
                probe = a(_no_names)
            except MissingValue:
                probe = None
            if not isinstance(probe, str):
                raise ExpressionError(f"{fn}() takes a quoted metric name in {self.src!r}")
            self.names.add(prefix + probe)
            return lambda r: r(prefix + probe)
        raise ExpressionError(f"unknown function {fn}/{len(args)} at {t.pos} in {self.src!r}")


@dataclass(frozen=True)
class Expression:
    """A parsed condition. ``names`` are the bare names it reads (``ref:x`` for ``ref("x")``)."""

    source: str
    names: frozenset[str]
    _node: Node

    def evaluate(self, resolve: Resolver) -> Value:
        """The expression's value; raises :class:`MissingValue` when a name has no value."""
        v = self._node(resolve)
        if isinstance(v, float) and not math.isfinite(v):
            raise MissingValue("not finite")
        return v

    def holds(self, resolve: Resolver) -> bool:
        """Whether the condition is true; raises :class:`MissingValue` when it cannot be decided."""
        v = self.evaluate(resolve)
        if isinstance(v, str):
            raise ExpressionError(f"{self.source!r} is a string, not a condition")
        return bool(v)


def parse(src: str) -> Expression:
    """Parse ``src``; raises :class:`ExpressionError` with the position of the problem."""
    if not isinstance(src, str) or not src.strip():
        raise ExpressionError("empty expression")
    if len(src) > 2000:
        raise ExpressionError("expression longer than 2000 characters")
    p = _Parser(src)
    try:
        node = p.parse()
    except RecursionError:
        raise ExpressionError(f"expression nested too deeply: {src[:80]!r}") from None
    return Expression(src, frozenset(p.names), node)
