"""The knowledge base's ``/metrics``: what it holds (read at scrape time) and its requests.

Series (seed 004 tables 7-9 and its custom metric tables). Those of one knowledge base carry
``kb`` and the lifelong learning job it belongs to (``kind``, ``namespace``, ``name``, from the
knowledge base's key ``<namespace>/<job>``):

- ``sedna_kb_info{server,node,node_type}`` (1, where the knowledge base runs);
- ``sedna_kb_task_groups``, ``sedna_kb_tasks`` (known tasks), ``sedna_kb_models`` (groups with
  a current model), ``sedna_kb_deployed_groups``, ``sedna_kb_index_version``;
- per task group (``group``): ``sedna_kb_task_samples``, ``sedna_kb_task_deploy`` (1 if
  deployable), ``sedna_kb_task_score{metric}``, ``sedna_kb_task_model_info{url,format}`` (its
  current model file);
- per task (``task``): ``sedna_kb_task_relation{group}`` (transfer ratio),
  ``sedna_kb_task_info{attr}`` (its properties), ``sedna_kb_task_sample_info{url,type}`` with the
  number of samples as value;
- ``sedna_kb_requests_total{route,code}``, ``sedna_kb_request_seconds{route}``;
- one gauge per row of the ``metric`` table, labelled by its ``label`` column, one sample per
  ``metric_value`` row.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from apis.location import node_location
from kb.store import KnowledgeStore

_KB = ["kind", "namespace", "name", "kb"]
_JOB_KIND = "LifelongLearningJob"


def kb_labels(kb: str) -> list[str]:
    """``kind``, ``namespace``, ``name`` and ``kb`` of the knowledge base ``kb``
    (``<namespace>/<job>``; another key has no job: empty kind and namespace)."""
    namespace, _, job = kb.rpartition("/")
    return [_JOB_KIND if namespace else "", namespace, job, kb]


class KBMetrics:
    """Request counters plus a collector over the store."""

    def __init__(self, store: KnowledgeStore, server: str, node: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "sedna_kb_requests",
            "Knowledge base requests by route and status code",
            ["route", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "sedna_kb_request_seconds",
            "Knowledge base request handling time",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
            registry=self.registry,
        )
        self.registry.register(_StoreCollector(store, server, node))


class _StoreCollector(Collector):
    def __init__(self, store: KnowledgeStore, server: str, node: str) -> None:
        self._store = store
        self._server = server
        self._node = node

    def collect(self) -> Iterator[GaugeMetricFamily]:
        info = GaugeMetricFamily(
            "sedna_kb_info", "Where the knowledge base runs", labels=["server", "node", "node_type"]
        )
        info.add_metric([self._server, self._node, node_location(self._node)], 1)
        yield info
        yield from self._counts()
        yield from self._groups()
        yield from self._tasks()
        yield from self._custom()

    def _counts(self) -> Iterator[GaugeMetricFamily]:
        per_kb = {
            "groups": ("sedna_kb_task_groups", "Task groups in the knowledge base"),
            "tasks": ("sedna_kb_tasks", "Known tasks"),
            "models": ("sedna_kb_models", "Task groups with a current model"),
            "deployed": ("sedna_kb_deployed_groups", "Task groups flagged for deployment"),
            "version": ("sedna_kb_index_version", "Updates applied to the index"),
        }
        families = {k: GaugeMetricFamily(n, h, labels=_KB) for k, (n, h) in per_kb.items()}
        for row in self._store.counts():
            for key, family in families.items():
                family.add_metric(kb_labels(row["kb"]), row[key])
        yield from families.values()

    def _groups(self) -> Iterator[GaugeMetricFamily]:
        group = [*_KB, "group"]
        samples = GaugeMetricFamily(
            "sedna_kb_task_samples", "Samples of each task group", labels=group
        )
        deploy = GaugeMetricFamily(
            "sedna_kb_task_deploy", "1 if the group is deployable", labels=group
        )
        score = GaugeMetricFamily(
            "sedna_kb_task_score", "Evaluation scores", labels=[*group, "metric"]
        )
        for g in self._store.group_rows():
            where = [*kb_labels(g["kb"]), g["name"]]
            samples.add_metric(where, g["sample_num"])
            deploy.add_metric(where, g["deploy"])
            for metric, value in g["scores"].items():
                score.add_metric([*where, metric], float(value))
        model = GaugeMetricFamily(
            "sedna_kb_task_model_info",
            "1 per task group: the model file it loads (where its model is saved)",
            labels=[*group, "url", "format"],
        )
        for m in self._store.model_rows():
            model.add_metric([*kb_labels(m["kb"]), m["grp"], m["url"], m["format"]], 1)
        yield from (samples, deploy, score, model)

    def _tasks(self) -> Iterator[GaugeMetricFamily]:
        relation = GaugeMetricFamily(
            "sedna_kb_task_relation",
            "Transfer ratio of a task in its group",
            labels=[*_KB, "group", "task"],
        )
        for r in self._store.relation_rows():
            relation.add_metric([*kb_labels(r["kb"]), r["grp"], r["task"]], r["ratio"])
        task = [*_KB, "task"]
        info = GaugeMetricFamily(
            "sedna_kb_task_info", "1 per task: its properties (attributes)", labels=[*task, "attr"]
        )
        sample = GaugeMetricFamily(
            "sedna_kb_task_sample_info",
            "Samples of a task by where they are (url) and what for (train, eval, hard)",
            labels=[*task, "url", "type"],
        )
        for t in self._store.task_rows():
            where = [*kb_labels(t["kb"]), t["name"]]
            info.add_metric([*where, t["task_attr"]], 1)
            for s in t["samples"]:
                sample.add_metric([*where, s["url"], s["type"]], s["num"])
        yield from (relation, info, sample)

    def _custom(self) -> Iterator[GaugeMetricFamily]:
        for metric in self._store.custom_metrics():
            labels = [n for n in metric["label"].split(",") if n]
            family = GaugeMetricFamily(metric["name"], metric["note"] or "custom", labels=labels)
            for value in metric["values"]:
                values = value["label_value"].split(",") if labels else []
                family.add_metric(values, value["value"])
            yield family
