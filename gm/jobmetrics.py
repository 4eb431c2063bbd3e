"""Job state as Prometheus series, read from the GM's informer caches at scrape time.

Like kube-state-metrics: nothing is stored twice; every scrape reads the objects the GM already
watches. Series of every job (labels ``kind``, ``namespace``, ``name``):

- ``sedna_job_phase{phase}``: 1 for the phase a job is in (kinds with ``status.phase``);
- ``sedna_job_workers{state}``: workers ``active`` and ``failed``.

Each kind adds its own (labels ``namespace``, ``name`` and the series' own) through its policy's
``series`` and ``samples`` (``gm.kinds``), e.g. ``sedna_federated_current_round``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gm.kinds import JobPolicy, job_policies, policy_for_kind

# (kind, object as the API serves it)
JobObjects = Callable[[], Iterable[tuple[str, dict[str, Any]]]]

_JOB = ["kind", "namespace", "name"]
_WHERE = ["namespace", "name"]


class JobStateCollector(Collector):
    """Collects the series above from ``objects()`` on every scrape."""

    def __init__(self, objects: JobObjects) -> None:
        self._objects = objects

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One family per series name, one sample per job (and label values)."""
        phase = GaugeMetricFamily(
            "sedna_job_phase", "1 for the phase the job is in", labels=[*_JOB, "phase"]
        )
        workers = GaugeMetricFamily(
            "sedna_job_workers", "Workers of the job by state", labels=[*_JOB, "state"]
        )
        families = {
            series.name: GaugeMetricFamily(
                series.name, series.help, labels=[*_WHERE, *series.labels]
            )
            for policy in job_policies()
            for series in policy.series()
        }
        for kind, obj in self._objects():
            meta = obj.get("metadata", {})
            job = [kind, meta.get("namespace", "default"), meta.get("name", "")]
            status = obj.get("status") or {}
            if status.get("phase"):
                phase.add_metric([*job, str(status["phase"])], 1)
            for state in ("active", "failed"):
                if isinstance(status.get(state), int):
                    workers.add_metric([*job, state], status[state])
            policy = policy_for_kind(kind)
            if isinstance(policy, JobPolicy):
                for name, labels, value in policy.samples(status):
                    families[name].add_metric([*job[1:], *labels], value)
        yield from (phase, workers, *families.values())

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """No samples at registration time (the informers may not have synced)."""
        return iter(())
