"""Job, Dataset and Model state as Prometheus series, read from the GM's informer caches at
scrape time.

Like kube-state-metrics: nothing is stored twice; every scrape reads the objects the GM already
watches (without copying them). Every series has the labels ``kind``, ``namespace`` and ``name``
of the object it describes (the full list, with the design's table each row comes from, is in
``docs/operations.md``):

- ``sedna_job_phase{phase}``: 1 for the phase a job is in (kinds with ``status.phase``);
- ``sedna_job_workers{state}``: workers ``active`` and ``failed`` (the status counts);
- ``sedna_job_condition{type,status,stage}``: 1 for the job's latest condition;
- ``sedna_job_tasks{state}``: the job's workers as the GM last heard of them, ``active``
  (running) and ``total``; ``sedna_job_task_info{task,node,location,work,status}``: 1 each;
- ``sedna_job_inference{count}``: the inference worker's ``done``, ``ready`` (handed to the
  model, not answered yet) and ``error`` counts, ``sedna_job_inference_rate``: done / all, in %;
- ``sedna_dataset_samples{node}``, ``sedna_dataset_stage_samples{node,job_kind,job_name,stage}``
  (the samples of the current round of each staged job using the dataset, Train and Eval);
- ``sedna_model_metric{key}``: each numeric ``status.metrics`` entry of a Model.

Each job kind adds its own through its policy's ``series`` and ``samples`` (``gm.kinds``), e.g.
``sedna_federated_current_round``, ``sedna_incremental_stage``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from apis.location import node_location
from gm.kinds import JobPolicy, job_policies, policy_for_kind

# (kind, object as the API serves it)
Objects = Callable[[], Iterable[tuple[str, dict[str, Any]]]]
JobObjects = Objects
# Node name -> its labels (for the ``location`` label)
NodeLabels = Callable[[], Mapping[str, Mapping[str, str]]]

_JOB = ["kind", "namespace", "name"]

#: Worker role -> the design's ``work`` of a task.
_WORK = {
    "train": "training",
    "eval": "evaluating",
    "inference": "infering",
    "edge": "infering",
    "cloud": "infering",
    "aggregation": "aggregating",
    "trainer": "training",
}
_INFERENCE = (("done", "inferenceNumber"), ("ready", "readyNumber"), ("error", "errorNumber"))


class JobStateCollector(Collector):
    """Collects the series above from ``objects()`` (jobs), ``inputs()`` (Datasets and
    Models) and ``nodes()`` on every scrape."""

    def __init__(
        self,
        objects: Objects,
        inputs: Objects | None = None,
        nodes: NodeLabels | None = None,
    ) -> None:
        self._objects = objects
        self._inputs = inputs or (lambda: ())
        self._nodes = nodes or dict

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One family per series name, one sample per object (and label values)."""
        jobs = _JobFamilies({n: node_location(n, labels) for n, labels in self._nodes().items()})
        used: dict[tuple[str, str], list[tuple[str, str, dict[str, Any]]]] = {}
        for kind, obj in self._objects():
            jobs.add(kind, obj)
            dataset = ((obj.get("spec") or {}).get("dataset") or {}).get("name")
            round_data = (obj.get("status") or {}).get("roundData")
            if dataset and round_data:
                meta = obj.get("metadata") or {}
                namespace = meta.get("namespace", "default")
                used.setdefault((namespace, dataset), []).append(
                    (kind, meta.get("name", ""), round_data)
                )
        yield from jobs.families()
        yield from _input_families(self._inputs(), used)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """No samples at registration time (the informers may not have synced)."""
        return iter(())


class _JobFamilies:
    """The job series of one scrape, filled job by job."""

    def __init__(self, locations: Mapping[str, str]) -> None:
        self._locations = locations
        self.phase = GaugeMetricFamily(
            "sedna_job_phase", "1 for the phase the job is in", labels=[*_JOB, "phase"]
        )
        self.workers = GaugeMetricFamily(
            "sedna_job_workers", "Workers of the job by state", labels=[*_JOB, "state"]
        )
        self.condition = GaugeMetricFamily(
            "sedna_job_condition",
            "1 for the job's latest condition: its type, status (True, False, Unknown), stage",
            labels=[*_JOB, "type", "status", "stage"],
        )
        self.tasks = GaugeMetricFamily(
            "sedna_job_tasks",
            "The job's workers (tasks) the GM heard of: active (running) and total",
            labels=[*_JOB, "state"],
        )
        self.task_info = GaugeMetricFamily(
            "sedna_job_task_info",
            "1 per task of the job: where it runs, what it does, whether it is alive",
            labels=[*_JOB, "task", "node", "location", "work", "status"],
        )
        self.inference = GaugeMetricFamily(
            "sedna_job_inference",
            "Samples of the job's inference worker: done, ready (not answered yet), error",
            labels=[*_JOB, "count"],
        )
        self.rate = GaugeMetricFamily(
            "sedna_job_inference_rate",
            "Inference completion percentage: done / (done + ready + error), 0-100",
            labels=_JOB,
        )
        self.kind_families = {
            series.name: GaugeMetricFamily(series.name, series.help, labels=[*_JOB, *series.labels])
            for policy in job_policies()
            for series in policy.series()
        }

    def add(self, kind: str, obj: dict[str, Any]) -> None:
        """The samples of one job."""
        meta = obj.get("metadata") or {}
        job = [kind, meta.get("namespace", "default"), meta.get("name", "")]
        status = obj.get("status") or {}
        if not status:
            return
        if status.get("phase"):
            self.phase.add_metric([*job, str(status["phase"])], 1)
        for state in ("active", "failed"):
            if isinstance(status.get(state), int):
                self.workers.add_metric([*job, state], status[state])
        conditions = status.get("conditions") or []
        if conditions:
            last = conditions[-1]
            labels = [str(last.get(k) or "") for k in ("type", "status", "stage")]
            self.condition.add_metric([*job, *labels], 1)
        self._tasks(job, status.get("workers") or [])
        self._inference(job, status.get("metrics") or [])
        policy = policy_for_kind(kind)
        if isinstance(policy, JobPolicy):
            for name, labels, value in policy.samples(status):
                self.kind_families[name].add_metric([*job, *labels], value)

    def _tasks(self, job: list[str], workers: list[dict[str, Any]]) -> None:
        if not workers:
            return
        active = 0
        for worker in workers:
            node = worker.get("nodeName") or ""
            alive = worker.get("phase") in ("Running", "Pending", None)
            active += worker.get("phase") == "Running"
            role = worker.get("role") or ""
            self.task_info.add_metric(
                [
                    *job,
                    worker.get("name", ""),
                    node,
                    self._locations.get(node) or node_location(node),
                    _WORK.get(role, role),
                    "active" if alive else "dead",
                ],
                1,
            )
        self.tasks.add_metric([*job, "active"], active)
        self.tasks.add_metric([*job, "total"], len(workers))

    def _inference(self, job: list[str], metrics: list[dict[str, Any]]) -> None:
        if not metrics:
            return
        values = {m.get("key"): m.get("value") for m in metrics}
        counts = {}
        for count, key in _INFERENCE:
            number = _number(values.get(key))
            if number is not None:
                counts[count] = number
                self.inference.add_metric([*job, count], number)
        if "done" in counts:
            total = sum(counts.values())
            self.rate.add_metric(job, 100.0 * counts["done"] / total if total else 100.0)

    def families(self) -> Iterator[GaugeMetricFamily]:
        yield from (self.phase, self.workers, self.condition, self.tasks, self.task_info)
        yield from (self.inference, self.rate, *self.kind_families.values())


def _input_families(
    inputs: Iterable[tuple[str, dict[str, Any]]],
    used: Mapping[tuple[str, str], list[tuple[str, str, dict[str, Any]]]],
) -> Iterator[GaugeMetricFamily]:
    samples = GaugeMetricFamily(
        "sedna_dataset_samples", "Samples in the dataset", labels=[*_JOB, "node"]
    )
    stage = GaugeMetricFamily(
        "sedna_dataset_stage_samples",
        "Samples of the dataset in the current round of a staged job, by stage (Train, Eval)",
        labels=[*_JOB, "node", "job_kind", "job_name", "stage"],
    )
    model = GaugeMetricFamily(
        "sedna_model_metric", "A Model's status.metrics value by key", labels=[*_JOB, "key"]
    )
    for kind, obj in inputs:
        meta = obj.get("metadata") or {}
        where = [kind, meta.get("namespace", "default"), meta.get("name", "")]
        status = obj.get("status") or {}
        if kind == "Dataset":
            node = str((obj.get("spec") or {}).get("nodeName") or "")
            if isinstance(status.get("numberOfSamples"), int):
                samples.add_metric([*where, node], status["numberOfSamples"])
            for job_kind, job_name, data in used.get((where[1], where[2]), ()):
                for name, key in (("Train", "train"), ("Eval", "eval")):
                    if isinstance(data.get(key), int):
                        stage.add_metric([*where, node, job_kind, job_name, name], data[key])
        elif kind == "Model":
            for entry in status.get("metrics") or []:
                number = _number(entry.get("value"))
                if number is not None and entry.get("key"):
                    model.add_metric([*where, str(entry["key"])], number)
    yield from (samples, stage, model)


def _number(value: Any) -> float | None:
    """``value`` as a float (status metrics are text), None when it is not a number."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number else None  # NaN: not a number
