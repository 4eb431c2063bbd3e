"""A clock the staged-job and trigger tests move by hand: monotonic seconds and wall time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass
class FakeClock:
    """Monotonic seconds and wall time, both moved only by `advance`."""

    seconds: float = 1000.0
    wall: datetime = field(default_factory=lambda: datetime(2024, 5, 1, 12, 0))

    def monotonic(self) -> float:
        return self.seconds

    def now(self) -> datetime:
        return self.wall

    def advance(self, seconds: float) -> None:
        self.seconds += seconds
        self.wall += timedelta(seconds=seconds)
