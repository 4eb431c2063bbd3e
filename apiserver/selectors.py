"""Label selectors (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`, `>`, `<`) and field selectors."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from apiserver.validation import label_key_errors, label_value_errors


class SelectorError(ValueError):
    """A selector that cannot be parsed; the message is what the client sees."""


@dataclass(frozen=True)
class Requirement:
    """One label requirement: `key op values`."""

    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a label set satisfies this requirement."""
        present = self.key in labels
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if not present or value is None:
            return False
        try:
            number = int(value)
        except ValueError:
            return False
        bound = int(self.values[0])
        return number > bound if self.op == "gt" else number < bound


_TOKEN = re.compile(r"\s*(==|!=|=|!|\(|\)|,|<|>|[^\s=!(),<>]+)")


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            break
        tokens.append(match.group(1))
        position = match.end()
    return tokens


@dataclass(frozen=True)
class LabelSelector:
    """A parsed label selector; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        """Parse the `labelSelector` query parameter syntax."""
        if not text or not text.strip():
            return cls()
        tokens = _tokenize(text)
        requirements: list[Requirement] = []
        index = 0

        def take() -> str:
            nonlocal index
            if index >= len(tokens):
                raise SelectorError(
                    f"unable to parse requirement: found '', expected more in {text!r}"
                )
            token = tokens[index]
            index += 1
            return token

        def peek() -> str | None:
            return tokens[index] if index < len(tokens) else None

        while index < len(tokens):
            token = take()
            if token == "!":
                key = take()
                requirements.append(_checked(Requirement(key, "!")))
            else:
                key = token
                nxt = peek()
                if nxt in (None, ","):
                    requirements.append(_checked(Requirement(key, "exists")))
                elif nxt in ("=", "==", "!="):
                    take()
                    following = peek()
                    value = "" if following in (None, ",") else take()
                    op = "!=" if nxt == "!=" else "="
                    requirements.append(_checked(Requirement(key, op, (value,))))
                elif nxt in ("in", "notin"):
                    take()
                    if take() != "(":
                        raise SelectorError(
                            "unable to parse requirement: "
                            f"found '{tokens[index - 1]}', expected: '('"
                        )
                    values: list[str] = []
                    while True:
                        item = take()
                        if item == ")":
                            break
                        if item == ",":
                            continue
                        values.append(item)
                    requirements.append(_checked(Requirement(key, nxt, tuple(values))))
                elif nxt in (">", "<"):
                    take()
                    bound = take()
                    if not re.fullmatch(r"-?\d+", bound):
                        raise SelectorError(
                            f"unable to parse requirement: for 'Gt', 'Lt' operators, the value "
                            f"must be an integer: {bound!r}"
                        )
                    op = "gt" if nxt == ">" else "lt"
                    requirements.append(_checked(Requirement(key, op, (bound,))))
                else:
                    raise SelectorError(
                        f"unable to parse requirement: found '{nxt}', expected: "
                        "'=', '!=', '==', 'in', notin'"
                    )
            following = peek()
            if following is None:
                break
            if following != ",":
                raise SelectorError(f"found '{following}', expected: ',' or 'end of string'")
            take()
        return cls(tuple(requirements))

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether every requirement holds for the label set."""
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)


def _checked(requirement: Requirement) -> Requirement:
    errors = label_key_errors(requirement.key, "key")
    if requirement.op not in ("gt", "lt"):
        for value in requirement.values:
            errors.extend(label_value_errors(value, f"values[{requirement.values.index(value)}]"))
    if errors:
        raise SelectorError(f"unable to parse requirement: {errors[0]}")
    return requirement


@dataclass(frozen=True)
class FieldRequirement:
    """One field requirement: `field=value` or `field!=value`."""

    field: str
    value: str
    negated: bool


def _split_unescaped(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            current.append(char)
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


@dataclass(frozen=True)
class FieldSelector:
    """A parsed field selector; supported field names depend on the resource type."""

    requirements: tuple[FieldRequirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> FieldSelector:
        """Parse the `fieldSelector` query parameter syntax (`a=b,c!=d`)."""
        if not text or not text.strip():
            return cls()
        requirements = []
        for term in _split_unescaped(text, ","):
            match = re.fullmatch(r"\s*([^=!\s]+)\s*(==|!=|=)(.*)", term)
            if match is None:
                raise SelectorError(f"invalid selector: '{text}'; can't understand '{term}'")
            field, op, value = match.groups()
            requirements.append(FieldRequirement(field, _unescape(value.strip()), op == "!="))
        return cls(tuple(requirements))

    def check_supported(self, supported: Callable[[str], bool]) -> None:
        """Raise `SelectorError` naming the first field the resource cannot select on."""
        for requirement in self.requirements:
            if not supported(requirement.field):
                raise SelectorError(f"field label not supported: {requirement.field}")

    def matches(self, field_value: Callable[[str], str]) -> bool:
        """Whether the object whose field values `field_value` returns satisfies the selector."""
        for requirement in self.requirements:
            equal = field_value(requirement.field) == requirement.value
            if equal == requirement.negated:
                return False
        return True

    def exact_name(self) -> str | None:
        """The name required by `metadata.name=X`, used to narrow a scan."""
        for requirement in self.requirements:
            if requirement.field == "metadata.name" and not requirement.negated:
                return requirement.value
        return None
