"""Counters of an edge inference worker and their report to the LC."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from sedna.common.report import TaskInfo, utc_now


@dataclass(frozen=True)
class InferenceStats:
    """A snapshot of the edge worker's counters.

    ``cloud_failures`` counts hard samples answered by the edge because the cloud could not
    (down, slow, erroring, or skipped while the circuit breaker was open).
    """

    inference_number: int = 0
    hard_example_number: int = 0
    cloud_inference_number: int = 0
    cloud_failures: int = 0
    start_time: str = field(default_factory=utc_now)

    @property
    def upload_cloud_ratio(self) -> float:
        """Share of samples judged hard (sent, or meant to be sent, to the cloud)."""
        if not self.inference_number:
            return 0.0
        return self.hard_example_number / self.inference_number

    def task_info(self) -> TaskInfo:
        """The ``taskInfo`` of the worker's report (Sedna's field names)."""
        return TaskInfo(
            inference_number=self.inference_number,
            hard_example_number=self.hard_example_number,
            upload_cloud_ratio=round(self.upload_cloud_ratio, 6),
            cloud_failures=self.cloud_failures,
            start_time=self.start_time,
            update_time=utc_now(),
        )


class StatsCounter:
    """Thread-safe accumulation of :class:`InferenceStats`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats = InferenceStats()
        self._version = 0

    def add(
        self, *, samples: int = 0, hard: int = 0, cloud_answers: int = 0, cloud_failures: int = 0
    ) -> None:
        """Add to the counters."""
        with self._lock:
            current = self._stats
            self._stats = InferenceStats(
                inference_number=current.inference_number + samples,
                hard_example_number=current.hard_example_number + hard,
                cloud_inference_number=current.cloud_inference_number + cloud_answers,
                cloud_failures=current.cloud_failures + cloud_failures,
                start_time=current.start_time,
            )
            self._version += 1

    def snapshot(self) -> tuple[InferenceStats, int]:
        """The current counters and a version number that changes with every update."""
        with self._lock:
            return self._stats, self._version
