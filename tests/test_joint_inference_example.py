"""The digits example end to end: train, cloud worker and edge worker as real processes."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "joint_inference"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_healthy(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"cloud worker exited with {process.returncode}"
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
        finally:
            connection.close()
    pytest.fail("cloud worker did not become healthy")


@pytest.fixture
def lc_reports() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    bodies: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", bodies
    server.shutdown()
    server.server_close()


def test_example_workers_run_from_the_environment(
    tmp_path: Path, lc_reports: tuple[str, list[dict[str, Any]]]
) -> None:
    lc_url, bodies = lc_reports
    models = tmp_path / "models"
    subprocess.run(
        [sys.executable, str(EXAMPLE / "train_models.py"), str(models)],
        check=True,
        capture_output=True,
    )
    port = _free_port()
    base_env = {key: value for key, value in os.environ.items() if not key.startswith("HEM_")}
    base_env["LOG_LEVEL"] = "WARNING"
    cloud = subprocess.Popen(
        [sys.executable, str(EXAMPLE / "cloud_inference.py")],
        env={
            **base_env,
            "MODEL_URL": str(models / "cloud_model.pkl"),
            "BIG_MODEL_BIND_IP": "127.0.0.1",
            "BIG_MODEL_BIND_PORT": str(port),
        },
    )
    try:
        _wait_healthy(port, cloud)
        edge = subprocess.run(
            [sys.executable, str(EXAMPLE / "edge_inference.py")],
            env={
                **base_env,
                "MODEL_URL": str(models / "edge_model.pkl"),
                "BIG_MODEL_IP": "127.0.0.1",
                "BIG_MODEL_PORT": str(port),
                "HEM_NAME": "CrossEntropy",
                "HEM_PARAMETERS": '[{"key": "threshold_cross_entropy", "value": "0.6"}]',
                "input_url": str(models / "test_samples.jsonl"),
                "OUTPUT_URL": str(tmp_path / "out"),
                "LC_SERVER": lc_url,
                "WORKER_NAME": "digits-edge",
                "SERVICE_NAME": "digits",
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        cloud.terminate()
        cloud.wait(timeout=10)
    assert edge.returncode == 0, edge.stderr
    lines = [json.loads(line) for line in (tmp_path / "out" / "edge_results.jsonl").open()]
    samples = sum(1 for _ in (models / "test_samples.jsonl").open())
    assert len(lines) == samples
    hard = [line for line in lines if line["is_hard"]]
    assert hard and all(line["cloud_prediction"] is not None for line in hard)
    assert all(line["cloud_prediction"] is None for line in lines if not line["is_hard"])
    final = bodies[-1]
    assert final["status"] == "completed"
    assert final["ownerName"] == "digits" and final["name"] == "digits-edge"
    assert final["taskInfo"]["inferenceNumber"] == samples
    assert final["taskInfo"]["hardExampleNumber"] == len(hard)
    assert f"{samples} samples, {len(hard)} hard" in edge.stdout
