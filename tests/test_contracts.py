"""One contract on both sides: the worker library's report models and the control plane's.

The same JSON fixtures (``tests/contracts/``) go through ``sedna.common.report`` (what workers
send) and ``apis.messages`` (what the LC parses and the bus carries); both must accept and refuse
alike, and whatever the LC accepts must reach the job's status, never a "retry later".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from apis.messages import WorkerMessage, WorkerReport, parse_upstream
from lc.errors import InvalidReport
from lc.reports import parse_report
from sedna.common import report as library
from tests.e2e import Cluster, post_report, run_joint_inference
from tests.services import wait_for

FIXTURES = Path(__file__).parent / "contracts"
ACCEPTED: dict[str, dict[str, Any]] = json.loads((FIXTURES / "reports_accepted.json").read_text())
REFUSED: dict[str, list[Any]] = json.loads((FIXTURES / "reports_refused.json").read_text())


def _meaningful(body: dict[str, Any]) -> dict[str, Any]:
    """A report body without empty members (each side has its own defaults for those)."""
    return {k: v for k, v in body.items() if v not in (None, [], {})}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_both_sides_accept_the_same_reports_and_read_them_alike(case: str) -> None:
    body = ACCEPTED[case]
    sent = library.WorkerReport.model_validate(body)
    received = WorkerReport.model_validate(json.loads(sent.to_json()))
    assert _meaningful(received.to_api()) == _meaningful(json.loads(sent.to_json()))
    assert _meaningful(WorkerReport.model_validate(body).to_api()) == _meaningful(body)


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_both_sides_refuse_the_same_reports_and_the_lc_names_the_field(case: str) -> None:
    body, field = REFUSED[case]
    with pytest.raises(ValidationError):
        library.WorkerReport.model_validate(body)
    with pytest.raises(InvalidReport) as refused:
        parse_report(body)
    assert refused.value.field == field
    assert field in str(refused.value)


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_what_the_lc_accepts_the_bus_carries(case: str) -> None:
    report = parse_report(ACCEPTED[case])
    message = WorkerMessage(worker=report.name, status=report.status, output=report.output())
    decoded = parse_upstream(json.loads(json.dumps(message.to_api())))
    assert isinstance(decoded, WorkerMessage)
    assert decoded.output == message.output


def test_upstream_union_is_told_apart_by_type() -> None:
    assert parse_upstream({"type": "dataset", "numberOfSamples": 3}).type == "dataset"
    assert parse_upstream({"worker": "w", "phase": "Running"}).type == "worker"
    with pytest.raises(ValidationError):
        parse_upstream({"type": "dataset", "numberOfSamples": -1})


@pytest.mark.slow
def test_list_and_text_metrics_land_in_status_and_a_bad_report_is_a_400(
    cluster: Cluster,
) -> None:
    run_joint_inference(cluster, "metrics")
    lc = cluster.stack.lcs["edge0"]
    base = {
        "name": "metrics-edge",
        "namespace": "default",
        "ownerName": "metrics",
        "ownerKind": "jointinferenceservice",
        "kind": "inference",
        "status": "running",
    }
    bad = {**base, "results": [{"format": "pkl", "url": "/m", "metrics": {"cm": {"tp": 1}}}]}
    status, answer = post_report(lc, "metrics-edge", bad)
    assert status == 400 and answer["field"] == "results[0].metrics.cm"
    good = {
        **base,
        "ownerInfo": {"inferenceNumber": 7, "hardExampleNumber": 2},
        "results": [
            {"format": "pkl", "url": "/m", "metrics": {"precision": [0.91, 0.88], "note": "n/a"}}
        ],
    }
    assert post_report(lc, "metrics-edge", good)[0] == 200

    def metrics() -> dict[str, str]:
        found = cluster.status("jointinferenceservices", "metrics").get("metrics") or []
        return {m["key"]: m["value"] for m in found}

    wait_for(lambda: "precision" in metrics(), 30, "the report's metrics in status")
    assert metrics() == {
        "precision": "[0.91, 0.88]",
        "note": "n/a",
        "inferenceNumber": "7",
        "hardExampleNumber": "2",
    }


@pytest.mark.slow
def test_a_report_for_an_unknown_worker_is_a_403_not_retry_later(cluster: Cluster) -> None:
    """The owner of a report is the LC's record of the worker: a stranger is refused."""
    body = {
        "name": "nobody",
        "ownerName": "x",
        "ownerKind": "no/such+kind",
        "kind": "inference",
        "status": "running",
    }
    status, answer = post_report(cluster.stack.lcs["edge0"], "nobody", body)
    assert (status, answer["error"]) == (403, "unknown_worker")
