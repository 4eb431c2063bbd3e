"""Prometheus metrics of one LocalController, on a registry of its own."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

PHASES = ("Pending", "Running", "Succeeded", "Failed")


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

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
