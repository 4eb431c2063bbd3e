"""The design's metric tables (seed 004, checked in verbatim) and the docs table that maps each of
their rows to series, parsed for the tests that check one against the other and the series
against what the components expose (:func:`declared_families`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.core import Metric

from gm.jobmetrics import JobStateCollector
from gm.metrics import GMMetrics
from kb.metrics import KBMetrics
from kb.store import KnowledgeStore
from lc.metrics import LCMetrics

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "tests" / "contracts" / "seed_004_metrics.md"
DOCS = ROOT / "docs" / "operations.md"
CUSTOM = "Custom metric"

_BEGIN = "<!-- seed-004-metrics: begin"
_END = "<!-- seed-004-metrics: end -->"
_SERIES = re.compile(r"`(<?[A-Za-z_.]+>?)\{([^}]*)\}`")


@dataclass(frozen=True)
class Series:
    """A series a docs row names: its name, the labels it must have, the fixed values."""

    name: str
    labels: tuple[str, ...]
    values: tuple[tuple[str, str], ...]

    @property
    def custom(self) -> bool:
        """The placeholder of the knowledge base's custom metrics (``<metric.name>``)."""
        return self.name.startswith("<")

    def selector(self) -> str:
        """A PromQL selector of the series with its fixed label values."""
        matchers = ",".join(f'{k}="{v}"' for k, v in self.values)
        return f"{self.name}{{{matchers}}}" if matchers else self.name


@dataclass(frozen=True)
class Row:
    """One row of the docs table."""

    table: str  # the design's table number, or CUSTOM
    row: str
    series: tuple[Series, ...]


def seed_rows(text: str | None = None) -> set[tuple[str, str]]:
    """``(table number, row)`` of every row of the design's tables, plus the custom metrics."""
    text = SEED.read_text() if text is None else text
    rows: set[tuple[str, str]] = set()
    table = None
    for line in text.splitlines():
        heading = re.match(r"^(\d+)\.\s+\S", line)
        if heading:
            table = heading.group(1)
        elif line.startswith("#### Custom metric"):
            rows.add((CUSTOM, "metric, metric_value"))
            table = None
        elif table and line.startswith("|") and not re.match(r"^\|\s*[-*]", line):
            cell = line.strip("|").split("|")[0].strip()
            if cell:
                rows.add((table, cell))
    return rows


def _series(cell: str) -> tuple[Series, ...]:
    found = []
    for name, body in _SERIES.findall(cell):
        labels, values = [], []
        for part in filter(None, (p.strip() for p in body.split(","))):
            key, _, value = part.partition("=")
            labels.append(key)
            if value:
                values.append((key, value.strip('"')))
        found.append(Series(name, tuple(labels), tuple(values)))
    return tuple(found)


def docs_rows(text: str | None = None) -> list[Row]:
    """The rows of the docs table between its markers."""
    text = DOCS.read_text() if text is None else text
    start, end = text.index(_BEGIN), text.index(_END)
    rows = []
    for line in text[start:end].splitlines()[1:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[0] in ("Design table", "---"):
            continue
        table = cells[0].split()[0] if cells[0][0].isdigit() else cells[0]
        rows.append(Row(table, cells[1], _series(cells[2])))
    return rows


@dataclass(frozen=True)
class Family:
    """A metric family a component declares: its type and label names."""

    type: str
    labels: tuple[str, ...]


def declared_families(tmp: Path) -> dict[str, Family]:
    """Every family the GM, an LC and the knowledge base declare, with no data needed (the
    collectors declare their families on every scrape, samples or not)."""
    gm = GMMetrics()
    gm.registry.register(JobStateCollector(list))
    lc = LCMetrics()
    lc.watch_workers(list, "edge0")
    store = KnowledgeStore(tmp / "kb.sqlite3")
    try:
        kb = KBMetrics(store, "http://127.0.0.1:1", "cloud0")
        metrics: list[Metric] = [
            *gm.registry.collect(),
            *lc.registry.collect(),
            *kb.registry.collect(),
        ]
    finally:
        store.close()
    # A labelled counter, gauge or histogram with no child yet has no samples: its collector
    # object knows its label names.
    wrapped = {
        name: tuple(getattr(collector, "_labelnames", ()))
        for registry in (gm.registry, lc.registry, kb.registry)
        for collector, names in registry._collector_to_names.items()
        for name in names
    }
    found = {}
    for family in metrics:
        labels = {k for s in family.samples for k in s.labels} - {"le"}
        labels |= set(getattr(family, "_labelnames", ()))
        labels |= set(wrapped.get(family.name, ()))
        found[family.name] = Family(family.type, tuple(sorted(labels)))
    return found
