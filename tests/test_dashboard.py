"""The Grafana dashboards in deploy/grafana ask only for series the GM, the LCs and the knowledge
base expose (with the labels they match on), every exposed family is on one of them, and the
logs dashboard asks Loki only for the labels the log files carry.

That every Prometheus query returns data under real jobs is tests/test_prometheus_stack.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.metrics_seed import ROOT, Family, declared_families

GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARDS = sorted(GRAFANA.glob("*.json"))
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
# Labels every series has from Prometheus itself, or that PromQL adds.
TARGET_LABELS = {"instance", "job", "le", "__name__"}
# The labels of the log streams (NOTES of the logs layout: promtail file_sd targets).
LOG_LABELS = {"namespace", "job", "kind", "worker", "pod", "container", "node"}
_SELECTOR = re.compile(r"\b(sedna_[a-z_]+)(\{[^}]*\})?")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)")
_BY = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def targets(dashboard: dict[str, Any], kind: str) -> Iterator[tuple[str, str]]:
    """``(panel title, expr)`` of every target of a panel whose data source is ``kind``."""
    for panel in dashboard["panels"]:
        if panel.get("datasource", {}).get("type") != kind:
            continue
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def family_of(series: str, families: dict[str, Family]) -> str | None:
    """The family a series name belongs to (``x_total`` is counter ``x``'s)."""
    for name, family in families.items():
        if any(series == name + suffix for suffix in SUFFIXES.get(family.type, ("",))):
            return name
    return None


@pytest.fixture(scope="module")
def families(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Family]:
    return declared_families(tmp_path_factory.mktemp("kb"))


def test_there_are_the_overview_learning_and_logs_dashboards() -> None:
    assert {p.stem for p in DASHBOARDS} >= {"sedna-overview", "sedna-learning", "sedna-logs"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_prometheus_query_names_exposed_series_and_labels(
    path: Path, families: dict[str, Family]
) -> None:
    for title, expr in targets(_load(path), "prometheus"):
        found = _SELECTOR.findall(expr)
        assert found, f"{path.stem} / {title}: names no sedna series: {expr}"
        for series, matchers in found:
            name = family_of(series, families)
            assert name is not None, f"{path.stem} / {title}: {series} is not exposed"
            known = set(families[name].labels) | TARGET_LABELS
            used = set(_MATCHER.findall(matchers or "")) and {
                m[0] for m in _MATCHER.findall(matchers)
            }
            assert used <= known, f"{path.stem} / {title}: {series} has no {used - known}"
        for group in _BY.findall(expr):
            by = {label.strip() for label in group.split(",") if label.strip()}
            labels = set().union(*(families[family_of(s, families)].labels for s, _ in found))
            assert by <= labels | TARGET_LABELS, f"{path.stem} / {title}: by {by - labels}"


def test_every_exposed_family_is_on_a_dashboard(families: dict[str, Family]) -> None:
    shown = {
        family_of(series, families)
        for path in DASHBOARDS
        for _, expr in targets(_load(path), "prometheus")
        for series, _ in _SELECTOR.findall(expr)
    }
    assert set(families) <= shown, f"on no dashboard: {sorted(set(families) - shown)}"


def test_the_logs_dashboard_asks_loki_by_namespace_job_worker_node() -> None:
    dashboard = _load(GRAFANA / "sedna-logs.json")
    queries = list(targets(dashboard, "loki"))
    assert queries
    for title, expr in queries:
        stream = re.search(r"\{([^}]*)\}", expr)
        assert stream, f"{title}: no stream selector: {expr}"
        used = {m[0] for m in _MATCHER.findall(stream.group(1))}
        assert used >= {"namespace", "job", "worker", "node"}, title
        assert used <= LOG_LABELS, f"{title}: {used - LOG_LABELS} is no label of the logs"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["loki"]["query"] == "loki"
    for name in ("namespace", "job", "worker", "node", "search"):
        assert name in variables, name


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_panels_are_well_formed(path: Path) -> None:
    dashboard = _load(path)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {variable["name"] for variable in dashboard["templating"]["list"]}
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"].strip("${}") in variables, panel["title"]
        assert panel["targets"] and all(target["expr"] for target in panel["targets"])
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            for variable in re.findall(r"\$\{?(\w+)", target["expr"]):
                assert variable in variables or variable.startswith("__"), (
                    f"{panel['title']}: ${variable} is not a variable"
                )
