"""Prometheus metrics of the GM (one registry per instance, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class GMMetrics:
    """The GM's counters and gauges, exposed on ``/metrics``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.reconciles = Counter(
            "sedna_gm_reconciles_total",
            "Reconciles by kind and result",
            ["kind", "result"],
            registry=self.registry,
        )
        self.reconcile_seconds = Histogram(
            "sedna_gm_reconcile_seconds",
            "Time spent in one reconcile",
            ["kind"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "sedna_gm_workqueue_depth", "Keys waiting in the work queue", registry=self.registry
        )
        self.upstream = Counter(
            "sedna_gm_upstream_messages_total",
            "Upstream messages applied, by resource kind",
            ["kind"],
            registry=self.registry,
        )
        self.malformed = Counter(
            "sedna_gm_malformed_messages_total",
            "Bus messages dropped because they could not be decoded",
            ["source"],
            registry=self.registry,
        )
        self.refused = Counter(
            "sedna_gm_upstream_refused_total",
            "Upstream messages refused: the sending node does not run the worker or hold the "
            "dataset they name",
            ["node", "reason"],
            registry=self.registry,
        )
        self.node_online = Gauge(
            "sedna_gm_node_online",
            "1 while the node's LC is online",
            ["node"],
            registry=self.registry,
        )
        self.leader = Gauge(
            "sedna_gm_leader", "1 while this GM holds the leader Lease", registry=self.registry
        )
