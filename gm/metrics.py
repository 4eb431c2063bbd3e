"""Prometheus metrics of the GM (one registry per instance, so tests can run several)."""

from __future__ import annotations

import re
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString


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


_LEGACY_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LEGACY_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_OM_SUFFIXES = ("_created", "_gsum", "_gcount")
_TYPES = {"info": "gauge", "stateset": "gauge", "gaugehistogram": "histogram", "unknown": "untyped"}


class _Families:
    """Already collected families, for ``generate_latest``."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


class TextRenderer:
    """Renders a registry in the Prometheus text format: byte for byte what ``generate_latest``
    gives (``tests/test_metrics_render.py``), much faster on the GM's thousands of job series.

    Names are checked once, label values copied unless they hold a character to escape, and the
    line of a sample object seen in the previous scrape is reused (the job collector keeps a
    job's samples until the job changes). A family with a name outside the classic character
    set, or samples with timestamps, is left to ``generate_latest``."""

    def __init__(self) -> None:
        self._valid: dict[str, bool] = {}
        # id(sample) -> (sample, its line), of the last scrape only
        self._lines: dict[int, tuple[Any, str]] = {}

    def _legacy(self, name: str, pattern: re.Pattern[str]) -> bool:
        known = self._valid.get(name)
        if known is None:
            known = self._valid[name] = pattern.fullmatch(name) is not None
        return known

    def _plain(self, sample: Any) -> bool:
        return (
            sample.timestamp is None
            and self._legacy(sample.name, _LEGACY_NAME)
            and all(self._legacy(k, _LEGACY_LABEL) for k in sample.labels)
        )

    def __call__(self, registry: CollectorRegistry) -> bytes:
        """The text of every family of ``registry``."""
        out: list[str] = []
        previous, lines = self._lines, {}
        for metric in registry.collect():
            body = self._body(metric, previous, lines)
            if body is None:
                out.append(generate_latest(_Families([metric])).decode())  # type: ignore[arg-type]
                continue
            name = metric.name + {"counter": "_total", "info": "_info"}.get(metric.type, "")
            help_text = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
            kind = _TYPES.get(metric.type, metric.type)
            out.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
            out.extend(body[""])
            for suffix in sorted(k for k in body if k):
                family = metric.name + suffix
                out.append(f"# HELP {family} {help_text}\n# TYPE {family} gauge\n")
                out.extend(body[suffix])
        self._lines = lines
        return "".join(out).encode()

    def _body(
        self,
        metric: Metric,
        previous: dict[int, tuple[Any, str]],
        lines: dict[int, tuple[Any, str]],
    ) -> dict[str, list[str]] | None:
        """The sample lines of ``metric`` by OpenMetrics suffix (``""``: the family's own),
        None when the family is not one for the fast path."""
        if not self._legacy(metric.name, _LEGACY_NAME):
            return None
        body: dict[str, list[str]] = {"": []}
        own = body[""]
        suffixes = {metric.name + suffix: suffix for suffix in _OM_SUFFIXES}
        for s in metric.samples:
            seen = previous.get(id(s))
            if seen is not None and seen[0] is s:
                line = seen[1]
            elif self._plain(s):
                line = _line(s)
            else:
                return None
            lines[id(s)] = (s, line)
            if s.name == metric.name or s.name not in suffixes:
                own.append(line)
            else:
                body.setdefault(suffixes[s.name], []).append(line)
        return body


def _line(sample: Any) -> str:
    if not sample.labels:
        return f"{sample.name} {floatToGoString(sample.value)}\n"
    pairs = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(sample.labels.items()))
    return f"{sample.name}{{{pairs}}} {floatToGoString(sample.value)}\n"


def _escape(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value
