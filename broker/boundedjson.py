"""Bounded JSON decoding for every endpoint that takes a body from someone else.

`loads` refuses, with a `BodyError` naming the limit, a body that is too large (checked before
anything is parsed), too deeply nested or with too many values. The C decoder's own recursion
guard stops a hostile nesting after a few microseconds; the parsed value is then walked without
recursion, so no recursive code of the caller (validation, pruning, deep copies) ever sees a
value deeper than `max_depth`. A YAML document (parsed elsewhere) is checked the same way with
`check_shape`, which also stops alias bombs: a value may not hold more nodes than its text has
bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["BodyError", "JsonLimits", "check_shape", "loads"]


class BodyError(ValueError):
    """A body that cannot be accepted; the message names what is wrong (for a 4xx answer)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        # One of "too_large", "not_utf8", "not_json", "too_deep", "too_many_values".
        self.reason = reason


@dataclass(frozen=True)
class JsonLimits:
    """How big and how deep a body may be."""

    max_bytes: int = 3 * 1024 * 1024
    # Deeper than any Kubernetes object or worker report; shallow enough for recursive code.
    max_depth: int = 100


def check_shape(value: Any, limits: JsonLimits, *, source_bytes: int) -> None:
    """Raise `BodyError` if `value` nests deeper than allowed or has more nodes than bytes."""
    max_nodes = source_bytes + 1
    nodes = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > max_nodes:
            raise BodyError(
                f"body holds more values than its {source_bytes} bytes can spell",
                "too_many_values",
            )
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limits.max_depth:
            raise BodyError(f"body nests deeper than {limits.max_depth} levels", "too_deep")
        stack.extend((child, depth + 1) for child in children)


def loads(
    data: bytes | str,
    limits: JsonLimits = JsonLimits(),
    *,
    object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None,
) -> Any:
    """Decode one JSON document within `limits`; raises `BodyError` naming the problem."""
    size = len(data)
    if size > limits.max_bytes:
        raise BodyError(
            f"body of {size} bytes exceeds the limit of {limits.max_bytes}", "too_large"
        )
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BodyError(f"body is not UTF-8: {exc}", "not_utf8") from None
    try:
        value = json.loads(data, object_pairs_hook=object_pairs_hook)
    except RecursionError:
        raise BodyError(f"body nests deeper than {limits.max_depth} levels", "too_deep") from None
    except json.JSONDecodeError as exc:
        raise BodyError(f"json parse error: {exc.msg} at offset {exc.pos}", "not_json") from None
    # Each value of a JSON text takes at least one of its bytes, and each level of nesting an
    # opening bracket: a text with fewer brackets than the depth limit needs no walk.
    if data.count("{") + data.count("[") >= limits.max_depth:
        check_shape(value, limits, source_bytes=size)
    return value
