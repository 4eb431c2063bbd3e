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

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from apis import Dataset, Model
from apis.location import node_location
from gm.kinds import JobPolicy, job_policies, policy_for_kind

# (kind, object as the API serves it)
Objects = Callable[[], Iterable[tuple[str, dict[str, Any]]]]
JobObjects = Objects
# Node name -> its labels (for the ``location`` label)
NodeLabels = Callable[[], Mapping[str, Mapping[str, str]]]

_JOB = ("kind", "namespace", "name")

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
    Models) and ``nodes()`` on every scrape.

    A job's samples are built once per ``resourceVersion`` and kept until it changes: a scrape
    of a thousand jobs, most of them unchanged since the last one, reuses their samples."""

    def __init__(
        self,
        objects: Objects,
        inputs: Objects | None = None,
        nodes: NodeLabels | None = None,
    ) -> None:
        self._objects = objects
        self._inputs = inputs or (lambda: ())
        self._nodes = nodes or dict
        self._specs = {
            **_JOB_FAMILIES,
            **{
                series.name: (series.help, (*_JOB, *series.labels))
                for policy in job_policies()
                for series in policy.series()
            },
        }
        # (kind, namespace/name) -> (uid, resourceVersion, samples); replaced every scrape.
        self._cache: dict[tuple[str, str], tuple[str, str, list[tuple[str, Sample]]]] = {}
        self._locations: dict[str, str] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One family per series name, one sample per object (and label values)."""
        families = {
            name: GaugeMetricFamily(name, text, labels=labels)
            for name, (text, labels) in self._specs.items()
        }
        locations = {n: node_location(n, labels) for n, labels in self._nodes().items()}
        cache = self._cache if locations == self._locations else {}
        fresh: dict[tuple[str, str], tuple[str, str, list[tuple[str, Sample]]]] = {}
        build = _JobSamples(self._specs, locations)
        used: dict[tuple[str, str], list[tuple[str, str, dict[str, Any]]]] = {}
        for kind, obj in self._objects():
            meta = obj.get("metadata") or {}
            namespace, name = meta.get("namespace", "default"), meta.get("name", "")
            key, uid, version = (
                (kind, f"{namespace}/{name}"),
                meta.get("uid", ""),
                meta.get("resourceVersion", ""),
            )
            cached = cache.get(key)
            if cached is not None and version and cached[:2] == (uid, version):
                samples = cached[2]
            else:
                samples = build.of(kind, [kind, namespace, name], obj.get("status") or {})
            fresh[key] = (uid, version, samples)
            for family, sample in samples:
                families[family].samples.append(sample)
            dataset = ((obj.get("spec") or {}).get("dataset") or {}).get("name")
            round_data = (obj.get("status") or {}).get("roundData")
            if dataset and round_data:
                used.setdefault((namespace, dataset), []).append((kind, name, round_data))
        self._cache, self._locations = fresh, locations
        yield from families.values()
        yield from _input_families(self._inputs(), used)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """No samples at registration time (the informers may not have synced)."""
        return iter(())


_JOB_FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "sedna_job_phase": ("1 for the phase the job is in", (*_JOB, "phase")),
    "sedna_job_workers": ("Workers of the job by state", (*_JOB, "state")),
    "sedna_job_condition": (
        "1 for the job's latest condition: its type, status (True, False, Unknown), stage",
        (*_JOB, "type", "status", "stage"),
    ),
    "sedna_job_tasks": (
        "The job's workers (tasks) the GM heard of: active (running) and total",
        (*_JOB, "state"),
    ),
    "sedna_job_task_info": (
        "1 per task of the job: where it runs, what it does, whether it is alive",
        (*_JOB, "task", "node", "location", "work", "status"),
    ),
    "sedna_job_inference": (
        "Samples of the job's inference worker: done, ready (not answered yet), error",
        (*_JOB, "count"),
    ),
    "sedna_job_inference_rate": (
        "Inference completion percentage: done / (done + ready + error), 0-100",
        tuple(_JOB),
    ),
}


class _JobSamples:
    """Builds the samples of one job from its status."""

    def __init__(
        self, specs: Mapping[str, tuple[str, tuple[str, ...]]], locations: Mapping[str, str]
    ) -> None:
        self._specs = specs
        self._locations = locations
        self._out: list[tuple[str, Sample]] = []

    def _add(self, family: str, values: Sequence[str], value: float) -> None:
        labels = dict(zip(self._specs[family][1], values, strict=True))
        self._out.append((family, Sample(family, labels, value)))

    def of(self, kind: str, job: list[str], status: dict[str, Any]) -> list[tuple[str, Sample]]:
        """The samples of the job ``job`` (kind, namespace, name) of ``kind``."""
        self._out = []
        if not status:
            return self._out
        if status.get("phase"):
            self._add("sedna_job_phase", [*job, str(status["phase"])], 1)
        for state in ("active", "failed"):
            if isinstance(status.get(state), int):
                self._add("sedna_job_workers", [*job, state], status[state])
        conditions = status.get("conditions") or []
        if conditions:
            last = conditions[-1]
            labels = [str(last.get(k) or "") for k in ("type", "status", "stage")]
            self._add("sedna_job_condition", [*job, *labels], 1)
        self._tasks(job, status.get("workers") or [])
        self._inference(job, status.get("metrics") or [])
        policy = policy_for_kind(kind)
        if isinstance(policy, JobPolicy):
            for name, labels, value in policy.samples(status):
                self._add(name, [*job, *labels], value)
        return self._out

    def _tasks(self, job: list[str], workers: list[dict[str, Any]]) -> None:
        if not workers:
            return
        active = 0
        for worker in workers:
            node = worker.get("nodeName") or ""
            alive = worker.get("phase") in ("Running", "Pending", None)
            active += worker.get("phase") == "Running"
            role = worker.get("role") or ""
            location = self._locations.get(node) or node_location(node)
            status = "active" if alive else "dead"
            info = [worker.get("name", ""), node, location, _WORK.get(role, role), status]
            self._add("sedna_job_task_info", [*job, *info], 1)
        self._add("sedna_job_tasks", [*job, "active"], active)
        self._add("sedna_job_tasks", [*job, "total"], len(workers))

    def _inference(self, job: list[str], metrics: list[dict[str, Any]]) -> None:
        if not metrics:
            return
        values = {m.get("key"): m.get("value") for m in metrics}
        counts = {}
        for count, key in _INFERENCE:
            number = _number(values.get(key))
            if number is not None:
                counts[count] = number
                self._add("sedna_job_inference", [*job, count], number)
        if "done" in counts:
            total = sum(counts.values())
            self._add(
                "sedna_job_inference_rate", job, 100.0 * counts["done"] / total if total else 100.0
            )


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
        "sedna_model_metric", "A model's status.metrics value by key", labels=[*_JOB, "key"]
    )
    for kind, obj in inputs:
        meta = obj.get("metadata") or {}
        where = [kind, meta.get("namespace", "default"), meta.get("name", "")]
        status = obj.get("status") or {}
        if kind == Dataset.KIND:
            node = str((obj.get("spec") or {}).get("nodeName") or "")
            if isinstance(status.get("numberOfSamples"), int):
                samples.add_metric([*where, node], status["numberOfSamples"])
            for job_kind, job_name, data in used.get((where[1], where[2]), ()):
                for name, key in (("Train", "train"), ("Eval", "eval")):
                    if isinstance(data.get(key), int):
                        stage.add_metric([*where, node, job_kind, job_name, name], data[key])
        elif kind == Model.KIND:
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
