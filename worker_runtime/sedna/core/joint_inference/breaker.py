"""A circuit breaker: stop calling a failing cloud for a while, then try again."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

from sedna.common.errors import ConfigError

BreakerState = Literal["closed", "open", "half-open"]


class CircuitBreaker:
    """Opens after ``failure_threshold`` consecutive failures; stays open for a delay that
    doubles each time it reopens (``base_delay`` up to ``max_delay``); then lets one trial
    call through (half-open): success closes it, failure reopens it.
    """

    def __init__(
        self,
        failure_threshold: int = 2,
        base_delay: float = 1.0,
        max_delay: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ConfigError(f"failure_threshold must be at least 1, got {failure_threshold}")
        if base_delay < 0 or max_delay < base_delay:
            raise ConfigError(
                f"need 0 <= base_delay <= max_delay, got base_delay={base_delay}, "
                f"max_delay={max_delay}"
            )
        self.failure_threshold = failure_threshold
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._openings = 0
        self._retry_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> BreakerState:
        """``closed`` (calls go through), ``open`` (calls skipped) or ``half-open``."""
        with self._lock:
            if self._retry_at is None:
                return "closed"
            if self._trial_in_flight or self._clock() >= self._retry_at:
                return "half-open"
            return "open"

    def allow(self) -> bool:
        """Whether a call may go out now (claims the single trial when half-open)."""
        with self._lock:
            if self._retry_at is None:
                return True
            if self._trial_in_flight or self._clock() < self._retry_at:
                return False
            self._trial_in_flight = True
            return True

    def record_success(self) -> None:
        """A call succeeded: close the breaker."""
        with self._lock:
            self._failures = 0
            self._openings = 0
            self._retry_at = None
            self._trial_in_flight = False

    def record_failure(self) -> float | None:
        """A call failed; returns the delay before the next trial when the breaker (re)opens."""
        with self._lock:
            self._failures += 1
            reopening = self._trial_in_flight
            self._trial_in_flight = False
            if not reopening and self._failures < self.failure_threshold:
                return None
            delay = min(self.max_delay, self.base_delay * 2**self._openings)
            self._openings += 1
            self._retry_at = self._clock() + delay
            return delay
