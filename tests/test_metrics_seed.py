"""Every row of the design's metric tables (seed 004) has a line in docs/operations.md, and every
series a line names is one the GM, an LC or the knowledge base exposes, with those labels.

That the series carry data for real jobs is checked by tests/test_prometheus_stack.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.metrics_seed import CUSTOM, DOCS, SEED, declared_families, docs_rows, seed_rows


def test_the_seed_tables_parse() -> None:
    rows = seed_rows()
    # 10 tables of 3, 3, 1, 3, 3, 4, 3, 9, 6, 2 rows, and the custom metrics.
    assert len(rows) == 37 + 1
    assert ("8", "TaskRelationship") in rows and ("10", "DeployModelUrl") in rows
    assert (CUSTOM, "metric, metric_value") in rows


def test_every_design_row_has_a_docs_line_naming_series() -> None:
    rows = docs_rows()
    listed = [(r.table, r.row) for r in rows]
    assert len(listed) == len(set(listed)), "a row is listed twice"
    assert set(listed) == seed_rows(), (
        f"rows without a line in {DOCS.name}: {sorted(seed_rows() - set(listed))}; "
        f"lines for no row of {SEED.name}: {sorted(set(listed) - seed_rows())}"
    )
    for row in rows:
        assert row.series, f"{row.table} {row.row}: names no series"


def test_every_series_of_the_table_is_declared_with_its_labels(tmp_path: Path) -> None:
    declared = declared_families(tmp_path)
    for row in docs_rows():
        for series in row.series:
            if series.custom:
                continue
            assert series.name in declared, f"{row.table} {row.row}: {series.name} not exposed"
            missing = set(series.labels) - set(declared[series.name].labels)
            assert not missing, f"{row.table} {row.row}: {series.name} lacks {sorted(missing)}"
            if series.name.startswith("sedna_") and not series.name.startswith("sedna_kb_info"):
                assert {"kind", "namespace", "name"} <= set(series.labels), series.name


@pytest.mark.parametrize("drop", ["| TaskRelationship |", "| InferenceRate |"])
def test_a_row_that_loses_its_line_is_found(drop: str) -> None:
    text = DOCS.read_text()
    cut = "\n".join(line for line in text.splitlines() if drop not in line)
    assert {(r.table, r.row) for r in docs_rows(cut)} != seed_rows()
