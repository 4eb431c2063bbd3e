"""The knowledge base's ``/metrics``: what it holds (read at scrape time) and its requests.

Series (seed 004 tables 7-9 and its custom metric tables):
``sedna_kb_info{server,node,node_type}``, ``sedna_kb_task_groups{kb}``, ``sedna_kb_tasks{kb}``,
``sedna_kb_models{kb}`` (groups with a current model), ``sedna_kb_deployed_groups{kb}``,
``sedna_kb_index_version{kb}``, ``sedna_kb_task_samples{kb,group}``,
``sedna_kb_task_deploy{kb,group}``, ``sedna_kb_task_score{kb,group,metric}``,
``sedna_kb_task_relation{kb,group,task}``, ``sedna_kb_requests_total{route,code}``,
``sedna_kb_request_seconds{route}``, and one gauge per row of the ``metric`` table.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from kb.store import KnowledgeStore


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
        info.add_metric([self._server, self._node, "cloud"], 1)
        yield info
        per_kb = {
            "groups": ("sedna_kb_task_groups", "Task groups in the knowledge base"),
            "tasks": ("sedna_kb_tasks", "Known tasks"),
            "models": ("sedna_kb_models", "Task groups with a current model"),
            "deployed": ("sedna_kb_deployed_groups", "Task groups flagged for deployment"),
            "version": ("sedna_kb_index_version", "Updates applied to the index"),
        }
        families = {k: GaugeMetricFamily(n, h, labels=["kb"]) for k, (n, h) in per_kb.items()}
        for row in self._store.counts():
            for key, family in families.items():
                family.add_metric([row["kb"]], row[key])
        yield from families.values()
        samples = GaugeMetricFamily(
            "sedna_kb_task_samples", "Samples of each task group", labels=["kb", "group"]
        )
        deploy = GaugeMetricFamily(
            "sedna_kb_task_deploy", "1 if the group is deployable", labels=["kb", "group"]
        )
        score = GaugeMetricFamily(
            "sedna_kb_task_score", "Evaluation scores", labels=["kb", "group", "metric"]
        )
        for g in self._store.group_rows():
            samples.add_metric([g["kb"], g["name"]], g["sample_num"])
            deploy.add_metric([g["kb"], g["name"]], g["deploy"])
            for metric, value in g["scores"].items():
                score.add_metric([g["kb"], g["name"], metric], float(value))
        yield from (samples, deploy, score)
        relation = GaugeMetricFamily(
            "sedna_kb_task_relation",
            "Transfer ratio of a task in its group",
            labels=["kb", "group", "task"],
        )
        for r in self._store.relation_rows():
            relation.add_metric([r["kb"], r["grp"], r["task"]], r["ratio"])
        yield relation
        yield from self._custom()

    def _custom(self) -> Iterator[GaugeMetricFamily]:
        for metric in self._store.custom_metrics():
            labels = [n for n in metric["label"].split(",") if n]
            family = GaugeMetricFamily(metric["name"], metric["note"] or "custom", labels=labels)
            for value in metric["values"]:
                values = value["label_value"].split(",") if labels else []
                family.add_metric(values, value["value"])
            yield family
