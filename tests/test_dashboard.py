"""The Grafana dashboard asks only for series the GM and LCs expose."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gm.jobmetrics import JobStateCollector
from gm.metrics import GMMetrics
from lc.metrics import LCMetrics

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "sedna-overview.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _families() -> dict[str, str]:
    """Name -> type of every metric family the GM and an LC expose."""
    gm = GMMetrics()
    gm.registry.register(JobStateCollector(lambda: []))
    families: dict[str, str] = {}
    for registry in (gm.registry, LCMetrics().registry):
        for family in text_string_to_metric_families(generate_latest(registry).decode()):
            families[family.name] = family.type
    return families


def _family_of(series: str, families: dict[str, str]) -> str | None:
    for name, kind in families.items():
        if any(series == name + suffix for suffix in SUFFIXES.get(kind, ("",))):
            return name
    return None


def test_every_query_names_an_exposed_series_and_every_family_is_shown() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    families = _families()
    asked = {
        name
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        for name in re.findall(r"\bsedna_[a-z_]+", target["expr"])
    }
    unknown = {series for series in asked if _family_of(series, families) is None}
    assert asked and not unknown, f"not exposed: {sorted(unknown)}"
    shown = {_family_of(series, families) for series in asked}
    assert set(families) <= shown, f"not on the dashboard: {sorted(set(families) - shown)}"


def test_panels_are_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
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
