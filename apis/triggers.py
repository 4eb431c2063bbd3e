"""Evaluating a staged job's trigger (pure functions over :class:`apis.kinds.Trigger`).

A trigger is ``{checkPeriodSeconds, timer: {start, end}, condition: {operator, threshold,
metric}}``: it fires when the time of day is inside the timer window (if any) and the metric
satisfies the condition (if any). The LC of a dataset's node evaluates train triggers on
``num_of_samples``; the GM evaluates deploy triggers on the eval worker's metrics and their
``<metric>_delta`` (trained minus deployed). Shared here because both sides need it.

Semantics, and where they differ from upstream Sedna:

* Operators ``> < >= <= = == !=`` and the aliases ``gt lt ge le eq ne``; ``=`` and ``==`` (and
  ``!=``) compare with an absolute tolerance of 1e-6, as upstream does.
* The window is ``[start, end)``; ``end: 24:00`` is the end of the day; ``start > end`` wraps
  midnight; ``start == end`` is the whole day.
* ``name[i]`` indexes a list metric (per-class precision). A list metric without an index is
  its mean (upstream converts it to 0, so ``precision_delta > 0.1`` never fires there).
* Scalar metrics work (upstream requires lists and silently skips the deploy otherwise).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime, time
from typing import Any

from pydantic import ValidationError

from apis.base import ApiModel
from apis.kinds import Trigger

ALIASES: dict[str, str] = {
    "gt": ">",
    "lt": "<",
    "ge": ">=",
    "le": "<=",
    "eq": "==",
    "=": "==",
    "ne": "!=",
}
OPERATORS: tuple[str, ...] = (">", "<", ">=", "<=", "==", "!=")
EQUALITY_TOLERANCE = 1e-6
END_OF_DAY = 24 * 60

_INDEXED = re.compile(r"^(?P<name>.+)\[(?P<index>\d+)\]$")


class InvalidTrigger(ValueError):
    """A trigger that fails validation; the message names the field."""


class TriggerResult(ApiModel):
    """Whether a trigger fired, and why (or why not) in words."""

    fired: bool
    reason: str


def parse_trigger(data: Trigger | Mapping[str, Any] | None) -> Trigger:
    """A validated trigger (None is the empty trigger, which always fires)."""
    if isinstance(data, Trigger):
        return data
    try:
        return Trigger.model_validate(data or {})
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            where = ".".join(str(p) for p in err.get("loc", ())) or "trigger"
            problems.append(f"{where}: {err.get('msg', 'invalid value')}")
        raise InvalidTrigger(f"invalid trigger: {'; '.join(problems)}") from exc


def canonical_operator(operator: str) -> str:
    """``>``, ``<``, ``>=``, ``<=``, ``==`` or ``!=`` for an operator or its alias."""
    op = ALIASES.get(operator.strip().lower(), operator.strip())
    if op not in OPERATORS:
        names = " ".join(OPERATORS + tuple(ALIASES))
        raise ValueError(f"operator must be one of {names}, not {operator!r}")
    return op


def compare(operator: str, value: float, threshold: float) -> bool:
    """``value operator threshold``; equality within 1e-6 (strict comparisons exclude it)."""
    op = canonical_operator(operator)
    equal = math.isclose(value, threshold, rel_tol=0.0, abs_tol=EQUALITY_TOLERANCE)
    return {
        ">": not equal and value > threshold,
        "<": not equal and value < threshold,
        ">=": equal or value >= threshold,
        "<=": equal or value <= threshold,
        "==": equal,
        "!=": not equal,
    }[op]


def minutes_of_day(value: str) -> int:
    """Minutes since midnight of ``HH:MM`` (``24:00`` is 1440, the end of the day)."""
    hours, _, minutes = value.partition(":")
    total = int(hours) * 60 + int(minutes)
    if not (0 <= int(minutes) < 60 and 0 <= total <= END_OF_DAY):
        raise ValueError(f"{value!r} is not a time of day HH:MM (00:00 to 24:00)")
    return total


def in_window(start: str, end: str, now: time) -> bool:
    """Whether ``now`` is in ``[start, end)``; ``start > end`` wraps midnight, equal is all day."""
    first, last, moment = minutes_of_day(start), minutes_of_day(end), now.hour * 60 + now.minute
    if first == last or (first == 0 and last == END_OF_DAY):
        return True
    if first < last:
        return first <= moment < last
    return moment >= first or moment < last


def metric_value(metrics: Mapping[str, Any], metric: str) -> float | None:
    """The number a condition compares: ``name``, or element ``i`` of a list for ``name[i]``.

    A list without an index is its mean; a string that is a number is that number. None when
    the metric (or the index) is absent or not numeric.
    """
    match = _INDEXED.match(metric)
    name, index = (match["name"], int(match["index"])) if match else (metric, None)
    value = metrics.get(name)
    if isinstance(value, list | tuple):
        if index is not None:
            value = value[index] if index < len(value) else None
        elif value:
            numbers = [_number(v) for v in value]
            return None if None in numbers else sum(numbers) / len(numbers)  # type: ignore[arg-type]
        else:
            value = None
    elif index is not None:
        value = None
    return _number(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def metric_deltas(new: Mapping[str, Any], old: Mapping[str, Any]) -> dict[str, Any]:
    """The trained model's metrics plus ``<metric>_delta`` = trained minus deployed.

    Scalars give a scalar delta, lists of the same length an element-wise list; a metric the
    deployed model lacks (or of another shape) gets no delta, so a condition on it does not fire.
    """
    out: dict[str, Any] = dict(new)
    for name, value in new.items():
        before = old.get(name)
        if isinstance(value, list | tuple) and isinstance(before, list | tuple):
            pairs = [(_number(a), _number(b)) for a, b in zip(value, before, strict=False)]
            if len(value) == len(before) and all(a is not None and b is not None for a, b in pairs):
                out[f"{name}_delta"] = [a - b for a, b in pairs]  # type: ignore[operator]
        elif not isinstance(value, list | tuple):
            a, b = _number(value), _number(before)
            if a is not None and b is not None:
                out[f"{name}_delta"] = a - b
    return out


def evaluate(
    trigger: Trigger | Mapping[str, Any] | None, metrics: Mapping[str, Any], now: datetime | time
) -> TriggerResult:
    """Whether ``trigger`` fires at ``now`` (the deciding node's local time) given ``metrics``.

    No timer means any time of day; no condition means the timer alone decides. A condition on
    a metric missing from ``metrics`` does not fire.
    """
    spec = parse_trigger(trigger)
    clock = now.time() if isinstance(now, datetime) else now
    if spec.timer is not None and not in_window(spec.timer.start, spec.timer.end, clock):
        window = f"{spec.timer.start}-{spec.timer.end}"
        return TriggerResult(fired=False, reason=f"{clock:%H:%M} is outside {window}")
    cond = spec.condition
    if cond is None:
        return TriggerResult(fired=True, reason="no condition; inside the timer window")
    value = metric_value(metrics, cond.metric)
    if value is None:
        return TriggerResult(fired=False, reason=f"metric {cond.metric} is not available")
    text = f"{cond.metric} {value:.6g} {cond.operator} {cond.threshold:g}"
    if compare(cond.operator, value, cond.threshold):
        return TriggerResult(fired=True, reason=text)
    return TriggerResult(fired=False, reason=f"not {text}")
