"""Joint inference with a real BigModelService on loopback: routing, fallback, reports."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from sedna.algorithms.hard_example_mining import CrossEntropyFilter
from sedna.common.errors import ConfigError
from sedna.common.report import LCReporter
from sedna.core.joint_inference import BigModelService, CircuitBreaker, JointInference

CLASSES = 4
EASY, HARD = 0.97, 0.3  # edge confidence in the true class; CrossEntropy(0.5) splits them


def sample(confidence: float, label: int) -> list[float]:
    """A test sample: the edge model's confidence and the true class."""
    return [confidence, float(label)]


class EdgeModel:
    """Answers a probability vector putting the sample's confidence on its class."""

    def predict(self, data: Any, **kwargs: Any) -> np.ndarray:
        x = np.asarray(data, dtype=np.float64)
        rows = np.atleast_2d(x)
        probabilities = np.empty((len(rows), CLASSES))
        for row, (confidence, label) in zip(probabilities, rows, strict=True):
            row[:] = (1 - confidence) / (CLASSES - 1)
            row[int(label)] = confidence
        return probabilities[0] if x.ndim == 1 else probabilities


class CloudModel:
    """Answers ``100 + class``, so a cloud answer is recognisable."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate: threading.Event | None = None

    def predict(self, data: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.gate is not None:
            self.gate.wait(5)
        x = np.asarray(data)
        if x.ndim == 1:
            return 100 + int(x[1])
        return [100 + int(label) for label in x[:, 1]]


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "MODEL_URL",
        "HEM_NAME",
        "HEM_PARAMETERS",
        "BIG_MODEL_IP",
        "BIG_MODEL_PORT",
        "BIG_MODEL_BIND_PORT",
        "LC_SERVER",
        "REPORT_INTERVAL_SECONDS",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def cloud_model() -> CloudModel:
    return CloudModel()


@pytest.fixture
def cloud(cloud_model: CloudModel) -> Iterator[BigModelService]:
    service = BigModelService(cloud_model, host="127.0.0.1", port=0).start(block=False)
    yield service
    if cloud_model.gate is not None:
        cloud_model.gate.set()
    service.stop()


def make_edge(port: int, **kwargs: Any) -> JointInference:
    kwargs.setdefault("reporter", LCReporter(None, "edge-test"))
    return JointInference(
        EdgeModel,
        hard_example_mining=CrossEntropyFilter(threshold_cross_entropy=0.5),
        cloud_host="127.0.0.1",
        cloud_port=port,
        **kwargs,
    )


def test_hard_samples_go_to_the_cloud_and_easy_ones_stay(cloud: BigModelService) -> None:
    with make_edge(cloud.port) as edge:
        is_hard, final, edge_result, cloud_result = edge.inference(sample(EASY, 2))
        assert (is_hard, cloud_result) == (False, None)
        assert final is edge_result
        assert int(np.argmax(edge_result)) == 2

        result = edge.inference(sample(HARD, 3))
        assert result.is_hard is True
        assert result.cloud_result == 103
        assert result.final_result == 103
        assert int(np.argmax(result.edge_result)) == 3

        stats = edge.stats
    assert (stats.inference_number, stats.hard_example_number) == (2, 1)
    assert (stats.cloud_inference_number, stats.cloud_failures) == (1, 0)
    assert stats.upload_cloud_ratio == 0.5
    assert cloud.samples == 1


def test_batch_and_stream_send_only_hard_samples(cloud: BigModelService) -> None:
    confidences = [EASY, HARD, EASY, EASY, HARD, HARD, EASY]
    samples = np.array([sample(c, i % CLASSES) for i, c in enumerate(confidences)])
    with make_edge(cloud.port) as edge:
        batch = edge.inference_batch(samples)
        stream = list(
            edge.inference_stream(iter(samples), batch_size=2, cloud_batch_size=2, max_in_flight=0)
        )
        assert edge.inference_batch([]) == []
        stats = edge.stats
    for results in (batch, stream):
        assert [r.is_hard for r in results] == [c == HARD for c in confidences]
        for index, r in enumerate(results):
            if r.is_hard:
                assert r.final_result == r.cloud_result == 100 + index % CLASSES
            else:
                assert r.cloud_result is None
                assert int(np.argmax(r.final_result)) == index % CLASSES
    assert stats.inference_number == 2 * len(samples)
    assert stats.hard_example_number == stats.cloud_inference_number == 6
    assert cloud.samples == 6
    # The batch call sent its 3 hard samples at once; the stream queued hard samples until at
    # least 2 waited (after its third edge batch), then sent the 3 together too.
    assert cloud.requests == 1 + 1


def test_cloud_down_mid_stream_falls_back_and_resumes_after_backoff(
    cloud: BigModelService, cloud_model: CloudModel
) -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, base_delay=30.0, clock=clock)
    port = cloud.port
    replacement: list[BigModelService] = []
    labels = [i % CLASSES for i in range(40)]

    def stream() -> Iterator[list[float]]:
        for index, label in enumerate(labels):
            if index == 10:
                cloud.stop()  # the cloud goes away mid-stream
            if index == 20:
                service = BigModelService(cloud_model, host="127.0.0.1", port=port)
                replacement.append(service.start(block=False))  # back, breaker still open
            if index == 30:
                clock.now += 30.0  # the backoff has elapsed
            yield sample(HARD if index % 2 else EASY, label)

    try:
        with make_edge(port, breaker=breaker) as edge:
            # Synchronous cloud calls (max_in_flight=0) so the outage starts at a known sample.
            results = list(
                edge.inference_stream(stream(), batch_size=1, cloud_batch_size=1, max_in_flight=0)
            )
            stats = edge.stats
    finally:
        for service in replacement:
            service.stop()

    assert len(results) == 40
    answered = [i for i, r in enumerate(results) if r.cloud_result is not None]
    # Hard samples are the odd ones; the cloud answered before the outage and after backoff.
    assert answered == [1, 3, 5, 7, 9, 31, 33, 35, 37, 39]
    for index, result in enumerate(results):
        expected = 100 + labels[index] if index in answered else labels[index]
        final = result.final_result
        assert (final if index in answered else int(np.argmax(final))) == expected
    assert stats.inference_number == 40
    assert stats.hard_example_number == 20
    assert stats.cloud_inference_number == 10
    assert stats.cloud_failures == 10
    assert breaker.state == "closed"
    assert replacement[0].samples == 5


def test_pipelined_stream_keeps_order_and_counts(cloud: BigModelService) -> None:
    labels = [(i * 7) % CLASSES for i in range(300)]
    confidences = [HARD if i % 3 == 0 else EASY for i in range(300)]
    stream = (np.array(sample(c, label)) for c, label in zip(confidences, labels, strict=True))
    with make_edge(cloud.port) as edge:
        results = list(
            edge.inference_stream(stream, batch_size=8, cloud_batch_size=5, max_in_flight=2)
        )
        stats = edge.stats
    assert len(results) == 300
    for result, label, confidence in zip(results, labels, confidences, strict=True):
        assert result.is_hard is (confidence == HARD)
        if result.is_hard:
            assert result.cloud_result == result.final_result == 100 + label
        else:
            assert int(np.argmax(result.final_result)) == label
    assert (stats.inference_number, stats.hard_example_number) == (300, 100)
    assert (stats.cloud_inference_number, stats.cloud_failures) == (100, 0)
    assert cloud.samples == 100


def test_slow_cloud_times_out_and_the_edge_answers(
    cloud: BigModelService, cloud_model: CloudModel
) -> None:
    cloud_model.gate = threading.Event()
    with make_edge(cloud.port, timeout=0.2) as edge:
        result = edge.inference(sample(HARD, 1))
        cloud_model.gate.set()
        stats = edge.stats
    assert result.is_hard and result.cloud_result is None
    assert int(np.argmax(result.final_result)) == 1
    assert (stats.cloud_failures, stats.cloud_inference_number) == (1, 0)


def test_without_cloud_address_hard_samples_stay_on_the_edge() -> None:
    edge = JointInference(
        EdgeModel, hard_example_mining="CloudOnly", reporter=LCReporter(None, "edge-test")
    )
    result = edge.inference(sample(EASY, 0))
    edge.close()
    assert result.is_hard and result.cloud_result is None
    assert edge.stats.cloud_failures == 1


def test_hem_from_environment_and_sedna_dict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEM_NAME", "CrossEntropy")
    monkeypatch.setenv("HEM_PARAMETERS", '[{"key": "threshold_cross_entropy", "value": "0.9"}]')
    config = JointInference.get_hem_algorithm_from_config(threshold_cross_entropy=0.1)
    assert config == {"method": "CrossEntropy", "param": {"threshold_cross_entropy": "0.9"}}
    edge = JointInference(EdgeModel, reporter=LCReporter(None, "edge-test"))
    assert isinstance(edge.hard_example_mining, CrossEntropyFilter)
    edge.close()
    monkeypatch.setenv("HEM_PARAMETERS", '[{"key": "threshold_cross_entropy", "value": "x"}]')
    with pytest.raises(ConfigError, match="threshold_cross_entropy"):
        JointInference(EdgeModel, reporter=LCReporter(None, "edge-test"))


def test_configuration_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BIG_MODEL_IP", "127.0.0.1")
    monkeypatch.setenv("BIG_MODEL_PORT", "cloud")
    with pytest.raises(ConfigError, match="BIG_MODEL_PORT must be a port number, got 'cloud'"):
        JointInference(EdgeModel, reporter=LCReporter(None, "edge-test"))
    monkeypatch.setenv("BIG_MODEL_BIND_PORT", "70000")
    with pytest.raises(ConfigError, match="BIG_MODEL_BIND_PORT must be between 0 and 65535"):
        BigModelService(CloudModel)
    with pytest.raises(TypeError, match="lacks required method"):
        JointInference(object(), reporter=LCReporter(None, "edge-test"))
    monkeypatch.delenv("BIG_MODEL_PORT")
    with pytest.raises(ConfigError, match="batch_size"):
        next(
            JointInference(EdgeModel, reporter=LCReporter(None, "e")).inference_stream(
                [], batch_size=0
            )
        )


def test_model_url_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[str] = []

    class Loadable(EdgeModel):
        def load(self, model_url: str, **kwargs: Any) -> None:
            loaded.append(model_url)

    monkeypatch.setenv("MODEL_URL", "/models/edge.pkl")
    JointInference(Loadable, reporter=LCReporter(None, "edge-test")).close()
    BigModelService(Loadable, host="127.0.0.1", port=0)
    assert loaded == ["/models/edge.pkl", "/models/edge.pkl"]


def _post(port: int, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_service_protocol_and_errors(cloud: BigModelService, cloud_model: CloudModel) -> None:
    assert _post(cloud.port, "/predict", b'{"data": [0.3, 2]}') == (200, {"result": 102})
    status, body = _post(cloud.port, "/predict", b'{"data": [[0.3, 1], [0.3, 3]], "batch": true}')
    assert (status, body) == (200, {"result": [101, 103]})
    status, body = _post(cloud.port, "/predict", b"{not json")
    assert status == 400 and "bad predict request" in body["error"]
    status, body = _post(cloud.port, "/predict", b'{"data": 5, "batch": true}')
    assert status == 400 and "list of samples" in body["error"]
    status, body = _post(cloud.port, "/nowhere", b"{}")
    assert status == 404 and "POST /nowhere" in body["error"]
    status, body = _post(cloud.port, "/predict", b'{"data": "text"}')
    assert status == 500 and "prediction failed: IndexError" in body["error"]
    assert cloud.errors == 1


def test_cloud_errors_fall_back_to_the_edge(
    cloud: BigModelService, cloud_model: CloudModel
) -> None:
    def broken(data: Any, **kwargs: Any) -> Any:
        raise RuntimeError("GPU on fire")

    cloud_model.predict = broken  # type: ignore[method-assign]
    with make_edge(cloud.port) as edge:
        result = edge.inference(sample(HARD, 2))
        stats = edge.stats
    assert result.cloud_result is None and int(np.argmax(result.final_result)) == 2
    assert stats.cloud_failures == 1


class _LC:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_counts_are_reported_periodically_and_at_the_end(
    cloud: BigModelService, monkeypatch: pytest.MonkeyPatch
) -> None:
    lc = _LC()
    monkeypatch.setenv("LC_SERVER", lc.url)
    monkeypatch.setenv("WORKER_NAME", "digits-edge")
    monkeypatch.setenv("SERVICE_NAME", "digits")
    monkeypatch.delenv("JOB_NAME", raising=False)
    try:
        edge = make_edge(cloud.port, reporter=None, report_interval=0.05)
        for index in range(4):
            edge.inference(sample(HARD if index == 0 else EASY, index % CLASSES))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
            body["taskInfo"]["inferenceNumber"] == 4 for body in lc.bodies
        ):
            time.sleep(0.02)
        periodic = len(lc.bodies)
        edge.close()
    finally:
        lc.close()
    assert periodic >= 1
    assert all(body["status"] == "running" for body in lc.bodies[:periodic])
    final = lc.bodies[-1]
    assert final["status"] == "completed"
    assert {key: final[key] for key in ("name", "namespace", "ownerName", "ownerKind", "kind")} == {
        "name": "digits-edge",
        "namespace": "default",
        "ownerName": "digits",
        "ownerKind": "jointinferenceservice",
        "kind": "inference",
    }
    info = final["taskInfo"]
    assert (info["inferenceNumber"], info["hardExampleNumber"]) == (4, 1)
    assert info["uploadCloudRatio"] == 0.25
    assert info["startTime"].endswith("Z") and info["updateTime"] >= info["startTime"]
    # Reports are periodic, not per sample: 4 samples gave far fewer than 4 running reports.
    assert sum(body["taskInfo"]["inferenceNumber"] == 4 for body in lc.bodies) <= 2


def test_circuit_breaker_states() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, base_delay=1.0, max_delay=3.0, clock=clock)
    assert breaker.allow() and breaker.state == "closed"
    assert breaker.record_failure() is None  # one failure: still closed
    assert breaker.record_failure() == 1.0
    assert breaker.state == "open" and not breaker.allow()
    clock.now += 1.0
    assert breaker.state == "half-open"
    assert breaker.allow()  # the single trial
    assert not breaker.allow()  # nobody else while it is out
    assert breaker.record_failure() == 2.0  # reopened, delay doubled
    clock.now += 2.0
    assert breaker.allow()
    assert breaker.record_failure() == 3.0  # capped at max_delay
    clock.now += 3.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow()
    with pytest.raises(ConfigError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ConfigError, match="base_delay"):
        CircuitBreaker(base_delay=5, max_delay=1)


def test_wait_for_cloud_sees_a_service_that_starts_late(cloud_model: CloudModel) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    edge = make_edge(port, timeout=0.5)
    assert edge.wait_for_cloud(0.3) is False  # nothing listens yet
    late = BigModelService(cloud_model, host="127.0.0.1", port=port)
    starter = threading.Timer(0.5, lambda: late.start(block=False))
    starter.start()
    try:
        assert edge.wait_for_cloud(10) is True
    finally:
        starter.join()
        late.stop()
        edge.close()
