"""The JSONPath subset that CRD `additionalPrinterColumns` use.

Supported: `.field`, `['field']`, escaped dots (`.metadata.labels.a\\.b`), `[N]` (negative counts
from the end), `[a:b]`, `[*]` and `.*`, `..field` (recursive descent), and filters such as
`[?(@.type=="Ready")]` with `==`, `!=`, `<`, `>`, `<=`, `>=` or a bare existence test.
An optional `{...}` wrapper is accepted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


class JsonPathError(ValueError):
    """A JSONPath expression outside the supported subset."""


@dataclass(frozen=True)
class _Field:
    name: str


@dataclass(frozen=True)
class _Index:
    start: int | None
    stop: int | None
    single: bool


@dataclass(frozen=True)
class _Wildcard:
    pass


@dataclass(frozen=True)
class _Descend:
    name: str


@dataclass(frozen=True)
class _Filter:
    path: tuple[Any, ...]
    op: str | None
    literal: Any


Step = _Field | _Index | _Wildcard | _Descend | _Filter

_NAME = re.compile(r"(?:\\.|[^.\[\]\\])+")
_FILTER = re.compile(r"\?\(\s*@((?:\.[^\s=!<>)]+)*)\s*(?:(==|!=|<=|>=|<|>)\s*(.+?))?\s*\)$")


def _unescape(name: str) -> str:
    return re.sub(r"\\(.)", r"\1", name)


def parse(expression: str) -> tuple[Step, ...]:
    """Parse an expression into steps; raises `JsonPathError` on unsupported syntax."""
    text = expression.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if text.startswith("$"):
        text = text[1:]
    steps: list[Step] = []
    position = 0
    while position < len(text):
        char = text[position]
        if text.startswith("..", position):
            match = _NAME.match(text, position + 2)
            if match is None:
                raise JsonPathError(f"unsupported JSONPath {expression!r}")
            steps.append(_Descend(_unescape(match.group(0))))
            position = match.end()
        elif char == ".":
            if text.startswith(".*", position):
                steps.append(_Wildcard())
                position += 2
                continue
            match = _NAME.match(text, position + 1)
            if match is None:
                if position + 1 == len(text):
                    break
                raise JsonPathError(f"unsupported JSONPath {expression!r}")
            steps.append(_Field(_unescape(match.group(0))))
            position = match.end()
        elif char == "[":
            end = _closing_bracket(text, position, expression)
            steps.append(_bracket(text[position + 1 : end].strip(), expression))
            position = end + 1
        else:
            raise JsonPathError(f"unsupported JSONPath {expression!r}")
    return tuple(steps)


def _closing_bracket(text: str, start: int, expression: str) -> int:
    depth = 0
    quote: str | None = None
    for index in range(start, len(text)):
        char = text[index]
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth == 0:
                return index
    raise JsonPathError(f"unterminated [ in JSONPath {expression!r}")


def _bracket(inner: str, expression: str) -> Step:
    if inner == "*":
        return _Wildcard()
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        return _Field(inner[1:-1])
    if re.fullmatch(r"-?\d+", inner):
        return _Index(int(inner), None, True)
    match = re.fullmatch(r"(-?\d*)\s*:\s*(-?\d*)", inner)
    if match:
        start, stop = match.groups()
        return _Index(int(start) if start else None, int(stop) if stop else None, False)
    match = _FILTER.fullmatch(inner)
    if match:
        relative, op, literal = match.groups()
        path = tuple(_Field(_unescape(p)) for p in relative.split(".")[1:]) if relative else ()
        return _Filter(path, op, _literal(literal, expression) if op else None)
    raise JsonPathError(f"unsupported JSONPath {expression!r}")


def _literal(text: str, expression: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise JsonPathError(f"unsupported literal {text!r} in JSONPath {expression!r}") from exc


def evaluate(steps: tuple[Step, ...], document: Any) -> list[Any]:
    """All values the path selects in `document` (empty when nothing matches)."""
    current = [document]
    for step in steps:
        current = [result for value in current for result in _apply(step, value)]
    return current


def _apply(step: Step, value: Any) -> Iterator[Any]:
    if isinstance(step, _Field):
        if isinstance(value, dict) and step.name in value:
            yield value[step.name]
    elif isinstance(step, _Index):
        if not isinstance(value, list):
            return
        if step.single:
            index = step.start if step.start is not None else 0
            if -len(value) <= index < len(value):
                yield value[index]
        else:
            yield from value[step.start : step.stop]
    elif isinstance(step, _Wildcard):
        if isinstance(value, dict):
            yield from value.values()
        elif isinstance(value, list):
            yield from value
    elif isinstance(step, _Descend):
        yield from _descend(step.name, value)
    else:
        items = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
        for item in items:
            if _filter_matches(step, item):
                yield item


def _descend(name: str, value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        if name in value:
            yield value[name]
        for item in value.values():
            yield from _descend(name, item)
    elif isinstance(value, list):
        for item in value:
            yield from _descend(name, item)


def _filter_matches(step: _Filter, item: Any) -> bool:
    found = evaluate(step.path, item)
    if step.op is None:
        return bool(found)
    if not found:
        return False
    left, right = found[0], step.literal
    if step.op == "==":
        return bool(left == right)
    if step.op == "!=":
        return bool(left != right)
    try:
        if step.op == "<":
            return bool(left < right)
        if step.op == ">":
            return bool(left > right)
        if step.op == "<=":
            return bool(left <= right)
        return bool(left >= right)
    except TypeError:
        return False


def first(expression: str, document: Any) -> Any:
    """The first value selected by `expression`, or None."""
    values = evaluate(parse(expression), document)
    return values[0] if values else None
