"""Trigger evaluation for incremental and lifelong learning jobs (pure functions, no I/O).

A trigger is ``{checkPeriodSeconds, timer: {start, end}, condition: {operator, threshold,
metric}}``. It fires when the time of day is inside the timer window and the metric's value
satisfies the condition; the caller checks every ``checkPeriodSeconds``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime, time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lc.errors import InvalidTrigger, describe_validation_error

Operator = Literal[">", "<", ">=", "<=", "==", "!="]
Metric = Literal["num_of_samples", "precision_delta"]
OPERATORS: tuple[str, ...] = (">", "<", ">=", "<=", "==", "!=")
METRICS: tuple[str, ...] = ("num_of_samples", "precision_delta")

_HHMM = re.compile(r"^(?P<h>\d{1,2}):(?P<m>\d{2})$")


def parse_time_of_day(value: Any) -> time:
    """``HH:MM`` (00:00 to 23:59) as a time.

    An integer is what a YAML 1.1 parser (PyYAML) makes of an unquoted ``20:00``: base-60
    minutes, so 1200 means 20:00.
    """
    if isinstance(value, time):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a time of day HH:MM")
    if isinstance(value, int):
        if not 0 <= value < 24 * 60:
            raise ValueError(f"{value} is not a time of day HH:MM")
        return time(value // 60, value % 60)
    if isinstance(value, str):
        match = _HHMM.match(value.strip())
        if match is not None:
            hour, minute = int(match["h"]), int(match["m"])
            if hour < 24 and minute < 60:
                return time(hour, minute)
    raise ValueError(f"{value!r} is not a time of day HH:MM (00:00 to 23:59)")


class Timer(BaseModel):
    """The daily window ``[start, end)`` in which a trigger may fire; it may wrap midnight."""

    model_config = ConfigDict(populate_by_name=True)

    start: time
    end: time

    @field_validator("start", "end", mode="before")
    @classmethod
    def _hhmm(cls, value: Any) -> time:
        return parse_time_of_day(value)


class Condition(BaseModel):
    """``metric operator threshold``, e.g. ``num_of_samples > 500``."""

    model_config = ConfigDict(populate_by_name=True)

    operator: Operator
    threshold: float
    metric: Metric


class Trigger(BaseModel):
    """A train or deploy trigger."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    check_period_seconds: int = Field(default=60, alias="checkPeriodSeconds", gt=0)
    timer: Timer | None = None
    condition: Condition | None = None


class TriggerResult(BaseModel):
    """Whether a trigger fired, and why (or why not) in words."""

    model_config = ConfigDict(frozen=True)

    fired: bool
    reason: str


def parse_trigger(data: Trigger | Mapping[str, Any]) -> Trigger:
    """Validate a trigger, raising :class:`InvalidTrigger` that names the bad field."""
    if isinstance(data, Trigger):
        return data
    try:
        return Trigger.model_validate(data)
    except ValidationError as exc:
        raise InvalidTrigger(f"invalid trigger: {describe_validation_error(exc)}") from exc


def compare(operator: str, value: float, threshold: float) -> bool:
    """``value operator threshold``; ``==`` and ``!=`` tolerate float rounding (1e-9)."""
    if operator == ">":
        return value > threshold
    if operator == "<":
        return value < threshold
    if operator == ">=":
        return value >= threshold
    if operator == "<=":
        return value <= threshold
    equal = math.isclose(value, threshold, rel_tol=1e-9, abs_tol=1e-12)
    if operator == "==":
        return equal
    if operator == "!=":
        return not equal
    raise ValueError(f"operator must be one of {' '.join(OPERATORS)}, not {operator!r}")


def in_window(start: time, end: time, now: time) -> bool:
    """Whether ``now`` is in ``[start, end)``; ``start > end`` wraps midnight, equal is all day."""
    if start == end:
        return True
    if start < end:
        return start <= now < end
    return now >= start or now < end


def check_due(period_seconds: float, last_check: float | None, now: float) -> bool:
    """Whether a check is due: never checked, or ``period_seconds`` passed since the last."""
    return last_check is None or now - last_check >= period_seconds


def precision_delta(
    new: Mapping[str, float], old: Mapping[str, float], key: str = "precision"
) -> float:
    """How much the new model's ``key`` metric exceeds the deployed one's (``new - old``)."""
    if key not in new:
        raise KeyError(f"the new model has no {key!r} metric")
    if key not in old:
        raise KeyError(f"the deployed model has no {key!r} metric")
    return float(new[key]) - float(old[key])


def evaluate(
    trigger: Trigger | Mapping[str, Any], metrics: Mapping[str, float], now: datetime | time
) -> TriggerResult:
    """Whether ``trigger`` fires at ``now`` (the node's local time) given the metric values.

    No timer means any time of day; no condition means the timer alone decides. A condition
    on a metric missing from ``metrics`` does not fire.
    """
    spec = parse_trigger(trigger)
    clock = now.time() if isinstance(now, datetime) else now
    if spec.timer is not None and not in_window(spec.timer.start, spec.timer.end, clock):
        window = f"{spec.timer.start:%H:%M}-{spec.timer.end:%H:%M}"
        return TriggerResult(fired=False, reason=f"{clock:%H:%M} is outside {window}")
    cond = spec.condition
    if cond is None:
        return TriggerResult(fired=True, reason="no condition; inside the timer window")
    if cond.metric not in metrics or metrics[cond.metric] is None:
        return TriggerResult(fired=False, reason=f"metric {cond.metric} is not available")
    value = float(metrics[cond.metric])
    text = f"{cond.metric} {value:g} {cond.operator} {cond.threshold:g}"
    if compare(cond.operator, value, cond.threshold):
        return TriggerResult(fired=True, reason=text)
    return TriggerResult(fired=False, reason=f"not {text}")
