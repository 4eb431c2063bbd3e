"""When the LC checks a train trigger: every ``checkPeriodSeconds``, on an injectable clock.

What a trigger means (window, operators, metrics) is :mod:`apis.triggers`, shared with the GM,
which evaluates deploy triggers. This module adds the cadence: a check is due when the period
has passed since the last one, measured on the clock given (tests pass a fake one and never
sleep). Upstream Sedna parses ``checkPeriodSeconds`` and ignores it; here it is honoured to the
second.
"""

from __future__ import annotations

import time as _time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from apis.kinds import Trigger
from apis.triggers import TriggerResult, evaluate, parse_trigger


class Clock(Protocol):
    """Elapsed seconds (for periods) and the local wall time (for timer windows)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        ...

    def now(self) -> datetime:
        """The node's local date and time."""
        ...


class SystemClock:
    """The real clocks of the machine."""

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return _time.monotonic()

    def now(self) -> datetime:
        """The local time (timer windows are in the node's time zone, as upstream)."""
        return datetime.now()


def check_due(period_seconds: float, last_check: float | None, now: float) -> bool:
    """Whether a check is due: never checked, or ``period_seconds`` passed since the last."""
    return last_check is None or now - last_check >= period_seconds


class TriggerCheck:
    """One trigger, evaluated at most once per ``checkPeriodSeconds``."""

    def __init__(self, trigger: Trigger | Mapping[str, Any] | None, clock: Clock) -> None:
        self.trigger = parse_trigger(trigger)
        self.clock = clock
        self.last_check: float | None = None
        self.last_result: TriggerResult | None = None

    @property
    def period(self) -> int:
        """Seconds between checks."""
        return self.trigger.check_period_seconds

    def seconds_until_due(self) -> float:
        """How long until the next check is due (0 when it is due now)."""
        if self.last_check is None:
            return 0.0
        return max(self.last_check + self.period - self.clock.monotonic(), 0.0)

    def poll(self, metrics: Mapping[str, Any]) -> TriggerResult | None:
        """The trigger's result when a check is due now, else None (nothing evaluated)."""
        moment = self.clock.monotonic()
        if not check_due(self.period, self.last_check, moment):
            return None
        self.last_check = moment
        self.last_result = evaluate(self.trigger, metrics, self.clock.now())
        return self.last_result
