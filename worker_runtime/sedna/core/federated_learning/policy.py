"""When a round closes: a pure decision from (updates received, seconds the round is open).

The policy, stated once:

1. As soon as all ``participants`` updates are in, aggregate.
2. With ``wait_after_min_seconds`` set: once ``min_updates`` are in, wait that much longer for
   the rest, then aggregate (a dead or very slow worker then costs each round this long
   instead of the whole timeout).
3. After ``timeout_seconds``, aggregate with what arrived if it is at least ``min_updates``;
   from then on aggregate as soon as ``min_updates`` are in.
4. If ``max_wait_seconds`` pass with fewer than ``min_updates``, the job fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sedna.common.errors import ConfigError


class RoundAction(StrEnum):
    """What the aggregator does with the open round now."""

    WAIT = "wait"
    AGGREGATE = "aggregate"
    FAIL = "fail"


@dataclass(frozen=True)
class RoundPolicy:
    """Round closing rule (see the module docstring)."""

    participants: int
    min_updates: int
    timeout_seconds: float
    max_wait_seconds: float
    wait_after_min_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.participants < 1:
            raise ConfigError(f"participants_count must be at least 1, got {self.participants}")
        if not 1 <= self.min_updates <= self.participants:
            raise ConfigError(
                f"min_node_number must be between 1 and participants_count "
                f"({self.participants}), got {self.min_updates}"
            )
        if self.timeout_seconds <= 0:
            raise ConfigError(f"round_timeout_seconds must be positive, got {self.timeout_seconds}")
        if self.max_wait_seconds < self.timeout_seconds:
            raise ConfigError(
                f"round_max_wait_seconds ({self.max_wait_seconds}) must not be below "
                f"round_timeout_seconds ({self.timeout_seconds})"
            )
        if self.wait_after_min_seconds is not None and self.wait_after_min_seconds < 0:
            raise ConfigError(
                f"round_wait_after_min_seconds must not be negative, got "
                f"{self.wait_after_min_seconds}"
            )

    def decide(
        self, received: int, elapsed: float, min_reached: float | None = None
    ) -> RoundAction:
        """The action for a round open for ``elapsed`` seconds holding ``received`` updates,
        the ``min_updates``-th of which came ``min_reached`` seconds after it opened."""
        if received >= self.participants:
            return RoundAction.AGGREGATE
        if received >= self.min_updates and elapsed >= self._closes_at(min_reached):
            return RoundAction.AGGREGATE
        if elapsed >= self.max_wait_seconds:
            return RoundAction.FAIL
        return RoundAction.WAIT

    def _closes_at(self, min_reached: float | None) -> float:
        """When a round holding at least ``min_updates`` closes without the rest."""
        if self.wait_after_min_seconds is None or min_reached is None:
            return self.timeout_seconds
        return min(self.timeout_seconds, min_reached + self.wait_after_min_seconds)

    def seconds_until_change(
        self, received: int, elapsed: float, min_reached: float | None = None
    ) -> float:
        """How long the decision stays ``WAIT`` if no update arrives (0 when it already moved)."""
        if self.decide(received, elapsed, min_reached) is not RoundAction.WAIT:
            return 0.0
        if received >= self.min_updates:
            return self._closes_at(min_reached) - elapsed
        return self.max_wait_seconds - elapsed

    def failure_message(self, received: int) -> str:
        """Why a round failed, for the job status."""
        return (
            f"only {received} of {self.participants} training workers sent an update within "
            f"{self.max_wait_seconds:g} s; at least {self.min_updates} (min_node_number) needed"
        )
