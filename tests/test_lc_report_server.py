"""The LC worker report server over real HTTP on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from apis.messages import WorkerReport
from lc.metrics import LCMetrics
from lc.report_server import ReportServer

JI_REPORT = {
    "name": "worker-name",
    "namespace": "default",
    "ownerName": "jointinferenceservice-name",
    "ownerKind": "jointinferenceservice",
    "kind": "inference",
    "status": "running",
    "taskInfo": {
        "inferenceNumber": 1000,
        "hardExampleNumber": 100,
        "uploadCloudRatio": 0.1,
        "startTime": "2020-11-03T08:39:22.517Z",
        "updateTime": "2020-11-03T08:50:22.517Z",
    },
}

FL_REPORT = {
    "name": "fl-train-0",
    "namespace": "team-a",
    "ownerName": "surface-defect",
    "ownerKind": "FederatedLearningJob",
    "kind": "train",
    "status": "completed",
    "taskInfo": {"currentRound": 7, "updateTime": "2021-01-01T00:00:00Z"},
    "models": [{"format": "pb", "url": "/models/m.pb", "metrics": {"precision": 0.9}}],
    "ownerInfo": {"round": 7},
}


class Upstream:
    """Collects accepted reports; can be told to fail."""

    def __init__(self) -> None:
        self.reports: list[WorkerReport] = []
        self.fail = False
        self._lock = threading.Lock()

    def __call__(self, report: WorkerReport) -> None:
        if self.fail:
            raise ConnectionError("outbox unavailable")
        with self._lock:
            self.reports.append(report)


@pytest.fixture
def upstream() -> Upstream:
    return Upstream()


@pytest.fixture
def server(upstream: Upstream) -> Iterator[ReportServer]:
    with ReportServer(upstream, port=0, max_body=4096) as srv:
        yield srv


def request(
    server: ReportServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def post(server: ReportServer, path: str, payload: Any) -> tuple[int, dict[str, Any]]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    status, raw = request(server, "POST", path, body, {"Content-Type": "application/json"})
    return status, json.loads(raw)


@pytest.mark.parametrize("prefix", ["sedna", "neptune"])
def test_accepts_joint_inference_report_on_both_paths(
    server: ReportServer, upstream: Upstream, prefix: str
) -> None:
    status, body = post(server, f"/{prefix}/workers/worker-name/info", JI_REPORT)
    assert (status, body) == (200, {"accepted": True})
    (report,) = upstream.reports
    assert report.name == "worker-name" and report.owner_kind == "jointinferenceservice"
    assert report.task_info is not None
    assert report.task_info.inference_number == 1000
    assert report.task_info.hard_example_number == 100
    assert report.task_info.upload_cloud_ratio == 0.1
    assert report.task_info.update_time == "2020-11-03T08:50:22.517Z"


def test_accepts_federated_report_with_models_and_owner_info(
    server: ReportServer, upstream: Upstream
) -> None:
    status, _ = post(server, "/sedna/workers/fl-train-0/info", FL_REPORT)
    assert status == 200
    (report,) = upstream.reports
    assert report.namespace == "team-a" and report.status == "completed"
    assert report.task_info is not None and report.task_info.current_round == 7
    assert [(m.format, m.url, m.metrics) for m in report.models] == [
        ("pb", "/models/m.pb", {"precision": 0.9})
    ]
    assert report.owner_info == {"round": 7}


def test_name_comes_from_path_and_results_alias(server: ReportServer, upstream: Upstream) -> None:
    payload = {k: v for k, v in FL_REPORT.items() if k not in ("name", "models")}
    payload["results"] = [
        {"format": "ckpt", "url": "/m", "metrics": [{"key": "recall", "value": 1}]}
    ]
    payload["status"] = "Running"
    status, _ = post(server, "/sedna/workers/from-path/info", payload)
    assert status == 200
    (report,) = upstream.reports
    assert report.name == "from-path" and report.status == "running"
    assert report.models[0].metrics == {"recall": 1}


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"ownerName": None}, "ownerName", "ownerName"),
        ({"ownerKind": ""}, "ownerKind", "ownerKind"),
        ({"status": "exploded"}, "status", "must be one of running, completed, failed"),
        ({"taskInfo": {"inferenceNumber": -1}}, "taskInfo.inferenceNumber", "greater than"),
        ({"taskInfo": {"uploadCloudRatio": "lots"}}, "taskInfo.uploadCloudRatio", "number"),
        ({"models": [{"format": "pb"}]}, "models[0].url", "required"),
        ({"name": "someone-else"}, "name", "does not match the worker 'worker-name'"),
    ],
)
def test_rejects_bad_report_naming_the_field(
    server: ReportServer, upstream: Upstream, change: dict[str, Any], field: str, words: str
) -> None:
    payload = {**JI_REPORT, **change}
    payload = {k: v for k, v in payload.items() if v is not None}
    status, body = post(server, "/sedna/workers/worker-name/info", payload)
    assert status == 400
    assert body["error"] == "invalid_report"
    assert body["field"] == field
    assert field in body["message"] and words in body["message"]
    assert upstream.reports == []


@pytest.mark.parametrize(
    ("raw", "words"),
    [(b"{not json", "body is not JSON"), (b"[1, 2]", "must be a JSON object")],
)
def test_rejects_bodies_that_are_not_json_objects(
    server: ReportServer, upstream: Upstream, raw: bytes, words: str
) -> None:
    status, body = post(server, "/sedna/workers/w/info", raw)
    assert status == 400 and words in body["message"]
    assert upstream.reports == []


def test_unknown_paths_are_404(server: ReportServer) -> None:
    assert post(server, "/sedna/workers/w/status", JI_REPORT)[0] == 404
    assert post(server, "/sedna/workers/info", JI_REPORT)[0] == 404
    assert request(server, "GET", "/nothing")[0] == 404
    assert request(server, "GET", "/sedna/workers/w/info")[0] == 405


def test_huge_body_is_413(server: ReportServer, upstream: Upstream) -> None:
    payload = {**JI_REPORT, "ownerInfo": {"blob": "x" * 10_000}}
    status, body = post(server, "/sedna/workers/worker-name/info", payload)
    assert status == 413 and body["error"] == "too_large"
    assert upstream.reports == []


def test_missing_content_length_is_411(server: ReportServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.putrequest("POST", "/sedna/workers/w/info")
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == 411
        assert b"Content-Length" in response.read()
    finally:
        conn.close()


def test_upstream_failure_is_503_so_the_worker_retries(
    server: ReportServer, upstream: Upstream
) -> None:
    upstream.fail = True
    status, body = post(server, "/sedna/workers/worker-name/info", JI_REPORT)
    assert status == 503 and body["error"] == "upstream_unavailable"


def test_healthz_and_metrics(server: ReportServer, upstream: Upstream) -> None:
    assert request(server, "GET", "/healthz") == (200, b"ok")
    post(server, "/sedna/workers/worker-name/info", JI_REPORT)
    post(server, "/sedna/workers/worker-name/info", {**JI_REPORT, "status": "?"})
    post(server, "/sedna/workers/worker-name/info", b"{")
    status, text = request(server, "GET", "/metrics")
    assert status == 200
    lines = text.decode().splitlines()
    assert 'sedna_lc_worker_reports_total{owner_kind="jointinferenceservice"} 1.0' in lines
    assert 'sedna_lc_worker_reports_rejected_total{reason="invalid_report"} 1.0' in lines
    assert 'sedna_lc_worker_reports_rejected_total{reason="invalid_json"} 1.0' in lines
    assert 'sedna_lc_workers{phase="Running"} 0.0' in lines


def test_two_servers_in_one_process_keep_their_own_metrics() -> None:
    first, second = Upstream(), Upstream()
    with ReportServer(first, port=0) as a, ReportServer(second, port=0, metrics=LCMetrics()) as b:
        assert a.port != b.port and a.url == f"http://127.0.0.1:{a.port}"
        post(a, "/sedna/workers/worker-name/info", JI_REPORT)
        post(a, "/sedna/workers/worker-name/info", JI_REPORT)
        post(b, "/neptune/workers/worker-name/info", JI_REPORT)
        labels = {"owner_kind": "jointinferenceservice"}
        sample = "sedna_lc_worker_reports_total"
        assert a.metrics.registry.get_sample_value(sample, labels) == 2
        assert b.metrics.registry.get_sample_value(sample, labels) == 1
    assert (len(first.reports), len(second.reports)) == (2, 1)


def test_port_in_use_raises(server: ReportServer) -> None:
    other = ReportServer(Upstream(), port=server.port)
    with pytest.raises(OSError):
        other.start()
