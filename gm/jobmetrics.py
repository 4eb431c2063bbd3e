"""Job state as Prometheus series, read from the GM's informer caches at scrape time.

Like kube-state-metrics: nothing is stored twice; every scrape reads the objects the GM already
watches. Series (labels ``kind``, ``namespace``, ``name``):

- ``sedna_job_phase{phase}``: 1 for the phase a job is in (kinds with ``status.phase``);
- ``sedna_job_workers{state}``: workers ``active`` and ``failed``;
- ``sedna_federated_current_round`` and ``sedna_federated_aggregations``: a federated job's
  progress;
- ``sedna_federated_node_samples{node}``: samples each node trained on in the latest round.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# (kind, object as the API serves it)
JobObjects = Callable[[], Iterable[tuple[str, dict[str, Any]]]]

FEDERATED_KINDS = frozenset({"FederatedLearningJob", "FederatedLearningTask"})
_JOB = ["kind", "namespace", "name"]
_FEDERATED = ["namespace", "name"]


class JobStateCollector(Collector):
    """Collects the series above from ``objects()`` on every scrape."""

    def __init__(self, objects: JobObjects) -> None:
        self._objects = objects

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One family per series name, one sample per job (and node)."""
        phase = GaugeMetricFamily(
            "sedna_job_phase", "1 for the phase the job is in", labels=[*_JOB, "phase"]
        )
        workers = GaugeMetricFamily(
            "sedna_job_workers", "Workers of the job by state", labels=[*_JOB, "state"]
        )
        rounds = GaugeMetricFamily(
            "sedna_federated_current_round",
            "Latest aggregated round of a federated job",
            labels=_FEDERATED,
        )
        aggregations = GaugeMetricFamily(
            "sedna_federated_aggregations",
            "Aggregations a federated job has done",
            labels=_FEDERATED,
        )
        samples = GaugeMetricFamily(
            "sedna_federated_node_samples",
            "Samples a node trained on in the latest round it took part in",
            labels=[*_FEDERATED, "node"],
        )
        for kind, obj in self._objects():
            meta = obj.get("metadata", {})
            job = [kind, meta.get("namespace", "default"), meta.get("name", "")]
            status = obj.get("status") or {}
            if status.get("phase"):
                phase.add_metric([*job, str(status["phase"])], 1)
            for state in ("active", "failed"):
                if isinstance(status.get(state), int):
                    workers.add_metric([*job, state], status[state])
            if kind in FEDERATED_KINDS:
                where = job[1:]
                if isinstance(status.get("currentRound"), int):
                    rounds.add_metric(where, status["currentRound"])
                if isinstance(status.get("aggregationCount"), int):
                    aggregations.add_metric(where, status["aggregationCount"])
                for node in status.get("nodes") or []:
                    if isinstance(node.get("numberOfSamples"), int) and node.get("nodeName"):
                        samples.add_metric([*where, node["nodeName"]], node["numberOfSamples"])
        yield from (phase, workers, rounds, aggregations, samples)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """No samples at registration time (the informers may not have synced)."""
        return iter(())
