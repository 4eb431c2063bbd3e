"""The worker -> LC reporter against a real HTTP server on loopback."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pydantic import ValidationError

from sedna.common.errors import ConfigError
from sedna.common.report import LCReporter, TaskInfo, WorkerReport


@dataclass
class FakeLC:
    """A tiny LC report server recording what it receives."""

    server: ThreadingHTTPServer
    received: list[tuple[str, dict]] = field(default_factory=list)
    status: int = 200

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"


@pytest.fixture
def lc() -> Iterator[FakeLC]:
    holder: list[FakeLC] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            fake = holder[0]
            fake.received.append((self.path, json.loads(body)))
            self.send_response(fake.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder.append(FakeLC(server))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield holder[0]
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_report_body_matches_the_joint_inference_document(
    lc: FakeLC, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LC_SERVER", lc.url)
    monkeypatch.setenv("WORKER_NAME", "digits-edge-abc")
    monkeypatch.setenv("NAMESPACE", "default")
    monkeypatch.delenv("JOB_NAME", raising=False)
    monkeypatch.setenv("SERVICE_NAME", "digits")
    reporter = LCReporter.from_env()
    report = reporter.build(
        owner_kind="jointinferenceservice",
        kind="inference",
        status="running",
        task_info=TaskInfo(
            inference_number=1000,
            hard_example_number=100,
            upload_cloud_ratio=0.1,
            start_time="2020-11-03T08:39:22.517Z",
            update_time="2020-11-03T08:50:22.517Z",
        ),
    )
    assert reporter.report(report) is True
    assert reporter.pending is None
    assert lc.received == [
        (
            "/sedna/workers/digits-edge-abc/info",
            {
                "name": "digits-edge-abc",
                "namespace": "default",
                "ownerName": "digits",
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
            },
        )
    ]


def test_training_reports_carry_models_and_extra_task_info(lc: FakeLC) -> None:
    reporter = LCReporter(lc.url, "fl-train-0", namespace="ns", owner_name="mnist")
    report = reporter.build(
        owner_kind="federatedlearningjob",
        kind="train",
        status="completed",
        task_info={"currentRound": 3, "updateTime": "2024-01-01T00:00:00.000Z", "loss": 0.2},
        models=[{"format": "npz", "url": "/out/model.npz", "metrics": {"accuracy": 0.9}}],
    )
    assert reporter.report(report)
    _, body = lc.received[0]
    assert body["taskInfo"] == {
        "currentRound": 3,
        "updateTime": "2024-01-01T00:00:00.000Z",
        "loss": 0.2,
    }
    assert body["models"] == [
        {"format": "npz", "url": "/out/model.npz", "metrics": {"accuracy": 0.9}}
    ]
    assert body["ownerName"] == "mnist"


def test_lc_away_keeps_latest_report_and_sends_it_later(lc: FakeLC) -> None:
    down = LCReporter(f"127.0.0.1:{_closed_port()}", "w", attempts=2, retry_delay=0, timeout=1)
    first = down.build(owner_kind="jointinferenceservice", kind="inference", status="running")
    second = down.build(owner_kind="jointinferenceservice", kind="inference", status="completed")
    assert down.report(first) is False
    assert down.report(second) is False
    assert down.pending == second  # only the latest is kept

    # The LC comes back (here: at another address); the pending report goes out on flush.
    down.url = f"{lc.url}/sedna/workers/w/info"
    assert down.flush() is True
    assert down.pending is None
    assert [body["status"] for _, body in lc.received] == ["completed"]
    assert down.flush() is True  # nothing left


def test_rejected_report_is_dropped_and_server_errors_are_retried(lc: FakeLC) -> None:
    reporter = LCReporter(lc.url, "w", attempts=3, retry_delay=0)
    report = reporter.build(owner_kind="x", kind="inference", status="running")
    lc.status = 400
    assert reporter.report(report) is False
    assert reporter.pending is None
    assert len(lc.received) == 1
    lc.status = 503
    assert reporter.report(report) is False
    assert reporter.pending == report
    assert len(lc.received) == 1 + 3


def test_without_lc_server_reporting_is_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LC_SERVER", raising=False)
    reporter = LCReporter.from_env()
    assert not reporter.enabled
    assert reporter.report(reporter.build(owner_kind="x", kind="y", status="running")) is False


def test_bad_settings_and_reports_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="LC_SERVER must be an http"):
        LCReporter("ftp://lc:21", "w")
    with pytest.raises(ConfigError, match="attempts"):
        LCReporter("http://127.0.0.1:9100", "w", attempts=0)
    with pytest.raises(ValidationError, match="status"):
        WorkerReport.model_validate(
            {"name": "w", "ownerName": "o", "ownerKind": "k", "kind": "i", "status": "dancing"}
        )
    with pytest.raises(ValidationError, match="uploadCloudRatio"):
        TaskInfo.model_validate({"uploadCloudRatio": 1.5})
