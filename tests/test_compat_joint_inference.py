"""Joint inference as upstream Sedna's scripts and clients use it, on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from sedna.common.errors import ConfigError
from sedna.core.joint_inference import BigModelService, JointInference
from sedna.service.client import ModelClient


class Edge:
    """Probability vectors: confident for even inputs, unsure for odd ones."""

    def predict(self, data: Any, **kwargs: Any) -> np.ndarray:
        value = int(np.asarray(data).ravel()[0])
        return np.array([0.98, 0.01, 0.01]) if value % 2 == 0 else np.array([0.4, 0.3, 0.3])


class Cloud:
    def predict(self, data: Any, **kwargs: Any) -> Any:
        return {"cloud": int(np.asarray(data).ravel()[0])}


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch) -> Iterator[BigModelService]:
    for name in ("MODEL_URL", "LC_SERVER", "HEM_PARAMETERS", "MINING_MODE", "LC_PERIOD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SERVICE_NAME", "helmet-detection")
    monkeypatch.delenv("JOB_NAME", raising=False)
    service = BigModelService(estimator=Cloud, host="127.0.0.1", port=0).start(block=False)
    monkeypatch.setenv("BIG_MODEL_IP", "127.0.0.1")
    monkeypatch.setenv("BIG_MODEL_PORT", str(service.port))
    yield service
    service.stop()


def test_upstream_model_client_reaches_the_service_route(cloud: BigModelService) -> None:
    # Upstream's edge posts {"data": ..., "post_process": ...} to /<service name>/predict.
    client = ModelClient(service_name="helmet-detection", host="127.0.0.1", port=cloud.port)
    assert client.inference([4, 0], post_process=None) == {"result": {"cloud": 4}}
    paths = [info["path"] for info in client.check_server_status()["infos"]]
    assert "/helmet-detection/predict" in paths


def test_script_shaped_edge_with_hem_from_the_resource(
    cloud: BigModelService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEM_NAME", "CrossEntropy")
    monkeypatch.setenv("LC_PERIOD", "5")  # upstream's report period variable is accepted
    hem = JointInference.get_hem_algorithm_from_config(threshold_cross_entropy=0.5)
    assert hem == {"method": "CrossEntropy", "param": {"threshold_cross_entropy": 0.5}}
    ji = JointInference(estimator=Edge, hard_example_mining=hem)
    try:
        is_hard, final, edge_result, cloud_result = ji.inference(np.array([2]))
        assert not is_hard and cloud_result is None and final is edge_result
        is_hard, final, edge_result, cloud_result = ji.inference(np.array([3]))
        assert is_hard and final == cloud_result == {"cloud": 3}
        assert ji.stats.inference_number == 2 and ji.stats.hard_example_number == 1
    finally:
        ji.close()


def test_mining_then_inference_mode(
    cloud: BigModelService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINING_MODE", "mining-then-inference")
    ji = JointInference(estimator=Edge, hard_example_mining="CloudOnly")
    try:
        is_hard, final, edge_result, cloud_result = ji.inference(np.array([2]))
        assert is_hard and edge_result is None and final == cloud_result == {"cloud": 2}
    finally:
        ji.close()
    monkeypatch.setenv("MINING_MODE", "EdgeOnly")
    with pytest.raises(ConfigError, match="MINING_MODE must be inference-then-mining or"):
        JointInference(estimator=Edge, hard_example_mining="CloudOnly")


def test_upstream_lc_reporter_sends_owner_info() -> None:
    import json
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from sedna.service.client import LCReporter

    received: list[tuple[str, dict[str, Any]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, json.loads(body)))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        message = {
            "name": "edge-0",
            "namespace": "default",
            "ownerName": "helmet",
            "ownerKind": "jointinferenceservice",
            "kind": "inference",
            "results": [],
        }
        reporter = LCReporter(f"http://127.0.0.1:{server.server_address[1]}", message, 0.1)
        reporter.start()
        reporter.update_for_edge_inference()
        reporter.update_for_collaboration_inference()
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        server.shutdown()
        server.server_close()
    path, body = received[0]
    assert path == "/sedna/workers/edge-0/info" and body["status"] == "running"
    info = body["ownerInfo"]
    assert (info["inferenceNumber"], info["hardExampleNumber"], info["uploadCloudRatio"]) == (
        2,
        1,
        0.5,
    )
    assert {"startTime", "updateTime"} <= set(info)
