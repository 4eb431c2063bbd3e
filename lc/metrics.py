"""Prometheus metrics of one LocalController, on a registry of its own.

Besides its counters, the LC describes the workers its process runtime holds, read at scrape
time (labels ``kind``, ``namespace``, ``name`` of the owning job, ``node``, ``worker``):
``sedna_workers{state="active|total"}`` per job, ``sedna_worker_info{location,status}`` (status
``waiting``, ``active`` or ``dead``), ``sedna_worker_start_time_seconds`` and
``sedna_worker_duration_seconds`` (start to exit, or to now while it runs).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from apis.location import node_location

PHASES = ("Pending", "Running", "Succeeded", "Failed")
#: Worker phase -> the design's worker status.
_STATUS = {"Pending": "waiting", "Running": "active", "Succeeded": "dead", "Failed": "dead"}


class _Worker(Protocol):
    """What the collector reads of a ``lc.runtime.WorkerStatus``."""

    name: str
    namespace: str
    phase: Any
    owner: Any
    started_at: datetime | None
    finished_at: datetime | None


class LCMetrics:
    """The LC's metrics; each instance has its own registry so several LCs share a process."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.reports_received = Counter(
            "sedna_lc_worker_reports",
            "Worker reports accepted by the report server.",
            ["owner_kind"],
            registry=self.registry,
        )
        self.reports_rejected = Counter(
            "sedna_lc_worker_reports_rejected",
            "Worker reports refused by the report server, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.workers = Gauge(
            "sedna_lc_workers",
            "Workers known to the process runtime, by phase.",
            ["phase"],
            registry=self.registry,
        )
        self.worker_restarts = Counter(
            "sedna_lc_worker_restarts",
            "Worker restarts done by the process runtime.",
            ["namespace", "worker"],
            registry=self.registry,
        )
        for phase in PHASES:
            self.workers.labels(phase=phase).set(0)

    def set_worker_phases(self, phases: Iterable[str]) -> None:
        """Set the per-phase worker gauge from the phases of all current workers."""
        counts = dict.fromkeys(PHASES, 0)
        for phase in phases:
            counts[phase] = counts.get(phase, 0) + 1
        for phase, count in counts.items():
            self.workers.labels(phase=phase).set(count)

    def watch_workers(self, workers: Callable[[], Iterable[_Worker]], node: str) -> None:
        """Describe ``workers()`` (the runtime's current workers) on every scrape."""
        self.registry.register(_WorkerCollector(workers, node))

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)


class _WorkerCollector(Collector):
    def __init__(self, workers: Callable[[], Iterable[_Worker]], node: str) -> None:
        self._workers = workers
        self._node = node
        self._location = node_location(node)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        job = ["kind", "namespace", "name", "node"]
        counts = GaugeMetricFamily(
            "sedna_workers", "The job's workers on this node: active, total", labels=[*job, "state"]
        )
        info = GaugeMetricFamily(
            "sedna_worker_info",
            "1 per worker: its location and status (waiting, active, dead)",
            labels=[*job, "worker", "location", "status"],
        )
        started = GaugeMetricFamily(
            "sedna_worker_start_time_seconds",
            "When the worker last started (Unix time)",
            labels=[*job, "worker"],
        )
        duration = GaugeMetricFamily(
            "sedna_worker_duration_seconds",
            "How long the worker has run (to its exit, or to now)",
            labels=[*job, "worker"],
        )
        per_job: dict[tuple[str, ...], list[int]] = {}
        now = time.time()
        for worker in self._workers():
            owner = worker.owner
            where = (
                owner.kind if owner else "",
                worker.namespace,
                owner.name if owner else "",
                self._node,
            )
            phase = str(worker.phase)
            tally = per_job.setdefault(where, [0, 0])
            tally[0] += phase == "Running"
            tally[1] += 1
            status = _STATUS.get(phase, "dead")
            info.add_metric([*where, worker.name, self._location, status], 1)
            if worker.started_at is not None:
                start = worker.started_at.timestamp()
                started.add_metric([*where, worker.name], start)
                over = phase not in ("Pending", "Running") and worker.finished_at
                end = worker.finished_at.timestamp() if over else now  # type: ignore[union-attr]
                duration.add_metric([*where, worker.name], max(0.0, end - start))
        for where, (active, total) in per_job.items():
            counts.add_metric([*where, "active"], active)
            counts.add_metric([*where, "total"], total)
        yield from (counts, info, started, duration)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())
