"""The LC report server takes reports only from workers it runs, each with its own token, and
answers every bad body with a 4xx (the bound on time is the client's socket timeout)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from lc.agent import LocalController
from lc.report_server import ReportServer
from lc.workertokens import TOKEN_HEADER
from sedna.common.report import LCReporter
from tests.e2e import Cluster, run_joint_inference, status_metrics
from tests.services import wait_for


def _post(lc: LocalController, worker: str, body: bytes, **headers: str) -> tuple[int, Any]:
    return _post_to(lc.reports.port, worker, body, **headers)


def _post_to(port: int, worker: str, body: bytes, **headers: str) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(
            "POST",
            f"/sedna/workers/{worker}/info",
            body=body,
            headers={"Content-Type": "application/json", **headers},
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def _report(worker: str, owner: str, number: int) -> bytes:
    return json.dumps(
        {
            "name": worker,
            "namespace": "default",
            "ownerName": owner,
            "ownerKind": "jointinferenceservice",
            "kind": "inference",
            "status": "running",
            "taskInfo": {"inferenceNumber": number, "hardExampleNumber": 0},
        }
    ).encode()


def _rejected(lc: LocalController, reason: str) -> float:
    return lc.metrics.reports_rejected.labels(reason=reason)._value.get()


def _number(cluster: Cluster) -> str | None:
    return status_metrics(cluster, "guarded").get("inferenceNumber")


@pytest.mark.slow
def test_reports_only_from_own_workers_with_their_tokens(cluster: Cluster) -> None:
    run_joint_inference(cluster, "guarded")
    edge0, cloud0 = cluster.stack.lcs["edge0"], cluster.stack.lcs["cloud0"]
    token = edge0.tokens.token("default", "guarded-edge")

    # The cloud worker runs on cloud0: edge0's LC refuses to speak for it, whatever the token.
    cloud_token = cloud0.tokens.token("default", "guarded-cloud")
    status, answer = _post(
        edge0,
        "guarded-cloud",
        _report("guarded-cloud", "guarded", 999),
        **{TOKEN_HEADER: cloud_token},
    )
    assert (status, answer["error"]) == (403, "unknown_worker")
    # A worker it runs, but without or with another worker's token.
    status, answer = _post(edge0, "guarded-edge", _report("guarded-edge", "guarded", 998))
    assert (status, answer["error"]) == (403, "bad_worker_token")
    status, answer = _post(
        edge0,
        "guarded-edge",
        _report("guarded-edge", "guarded", 997),
        **{TOKEN_HEADER: cloud_token},
    )
    assert (status, answer["error"]) == (403, "bad_worker_token")
    # The body cannot redirect a report to another job: the owner is the LC's record.
    assert (
        _post(
            edge0, "guarded-edge", _report("guarded-edge", "other-job", 5), **{TOKEN_HEADER: token}
        )[0]
        == 200
    )
    wait_for(
        lambda: status_metrics(cluster, "guarded").get("inferenceNumber") == "5", 30, "the report"
    )
    assert _rejected(edge0, "unknown_worker") == 1
    assert _rejected(edge0, "bad_worker_token") == 2

    # The worker library sends its token from the environment the LC gave it.
    assert LCReporter(edge0.report_url, "guarded-edge", token=token).report(
        LCReporter(None, "guarded-edge").build(
            owner_kind="jointinferenceservice",
            kind="inference",
            status="running",
            task_info={"inferenceNumber": 6, "hardExampleNumber": 0},
        )
    )
    wait_for(
        lambda: status_metrics(cluster, "guarded").get("inferenceNumber") == "6", 30, "library"
    )


@pytest.fixture(scope="module")
def bare_server() -> Iterator[ReportServer]:
    """The report server alone, with the LC's limits (1 MiB, depth 100), refusing nobody."""
    with ReportServer(lambda report: None, port=0) as server:
        yield server


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"[" * 200_000 + b"]" * 200_000, "invalid_json"),
        (b'{"a":' * 101 + b"1" + b"}" * 101, "invalid_json"),
        (b"{not json", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b"[]", "invalid_report"),
    ],
    ids=["deep", "depth-101", "syntax", "not-utf8", "array"],
)
def test_bad_bodies_get_a_400(bare_server: ReportServer, body: bytes, error: str) -> None:
    status, answer = _post_to(bare_server.port, "anyone", body)
    assert (status, answer["error"]) == (400, error)
    assert answer["message"]
