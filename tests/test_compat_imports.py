"""Every import path upstream Sedna's examples use resolves here, with upstream's signatures;
what is not provided fails with a message naming it."""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import sedna
from sedna.common.class_factory import ClassFactory, ClassType

# (module, names) as upstream's examples and lib/ export them.
PROVIDED = [
    ("sedna.common.config", ["BaseConfig", "Context"]),
    ("sedna.common.log", ["LOGGER"]),
    ("sedna.common.file_ops", ["FileOps"]),
    ("sedna.common.class_factory", ["ClassFactory", "ClassType"]),
    ("sedna.common.constant", ["K8sResourceKind", "K8sResourceKindStatus"]),
    ("sedna.datasources", ["BaseDataSource", "TxtDataParse", "CSVDataParse"]),
    ("sedna.core.base", ["JobBase"]),
    ("sedna.core.joint_inference", ["JointInference", "BigModelService"]),
    ("sedna.core.federated_learning", ["FederatedLearning"]),
    ("sedna.service.server", ["AggregationServer", "InferenceServer"]),
    ("sedna.service.client", ["LCClient", "LCReporter", "ModelClient", "http_request"]),
    ("sedna.backend", ["set_backend"]),
    ("sedna.backend.base", ["BackendBase"]),
    ("sedna.algorithms.aggregation", ["FedAvg"]),
    ("sedna.algorithms.hard_example_mining", []),
]


def test_version() -> None:
    assert isinstance(sedna.__version__, str) and sedna.__version__[0].isdigit()


@pytest.mark.parametrize(("module", "names"), PROVIDED, ids=[m for m, _ in PROVIDED])
def test_upstream_import_paths_resolve(module: str, names: list[str]) -> None:
    loaded = importlib.import_module(module)
    for name in names:
        assert getattr(loaded, name) is not None, f"{module}.{name}"


def _parameters(obj: Any) -> list[str]:
    return [name for name in inspect.signature(obj).parameters if name not in ("self",)]


def test_upstream_signatures() -> None:
    from sedna.core.federated_learning import FederatedLearning
    from sedna.core.joint_inference import BigModelService, JointInference
    from sedna.service.server import AggregationServer, InferenceServer

    assert _parameters(JointInference)[:2] == ["estimator", "hard_example_mining"]
    assert _parameters(JointInference.inference)[:2] == ["data", "post_process"]
    assert _parameters(BigModelService)[0] == "estimator"
    assert _parameters(FederatedLearning)[:2] == ["estimator", "aggregation"]
    assert _parameters(FederatedLearning.train)[:2] == ["train_data", "valid_data"]
    assert _parameters(InferenceServer)[:4] == ["model", "servername", "host", "http_port"]
    # AggregationServer(aggregation=, exit_round=, participants_count=, ws_size=, host=, ...)
    assert _parameters(AggregationServer)[:3] == ["aggregation", "exit_round", "participants_count"]


@pytest.mark.parametrize(
    ("module", "message"),
    [
        ("sedna.core.multi_edge_inference", "multi-edge inference .* is not supported"),
        ("sedna.algorithms.transmitter", "Plato"),
        ("sedna.datasources.kafka", "Kafka"),
        ("sedna.backend.tensorflow", "BACKEND_TYPE"),
    ],
)
def test_modules_not_provided_fail_with_a_clear_message(module: str, message: str) -> None:
    with pytest.raises(ModuleNotFoundError, match=f"{module}: upstream Sedna's module is not "):
        importlib.import_module(module)
    with pytest.raises(ModuleNotFoundError, match=message):
        importlib.import_module(module)


def test_incremental_learning_signatures_when_built() -> None:
    try:
        from sedna.core.incremental_learning import IncrementalLearning
    except ModuleNotFoundError as error:
        pytest.skip(str(error))
    assert _parameters(IncrementalLearning)[:2] == ["estimator", "hard_example_mining"]
    assert _parameters(IncrementalLearning.train)[:2] == ["train_data", "valid_data"]
    assert _parameters(IncrementalLearning.evaluate)[:2] == ["data", "post_process"]
    assert _parameters(IncrementalLearning.inference)[:2] == ["data", "post_process"]
    assert callable(IncrementalLearning.get_hem_algorithm_from_config)


def test_incremental_and_lifelong_modules_import_or_say_they_are_not_built() -> None:
    for module, name in (
        ("sedna.core.incremental_learning", "IncrementalLearning"),
        ("sedna.core.lifelong_learning", "LifelongLearning"),
    ):
        try:
            loaded = importlib.import_module(module)
        except ModuleNotFoundError as error:
            assert "is not available in this build" in str(error)
        else:
            assert getattr(loaded, name)


def test_kb_server_with_upstream_arguments(tmp_path: Path) -> None:
    from sedna.service.server import KBServer

    server = KBServer(host="127.0.0.1", http_port=0, save_dir=str(tmp_path / "kb"))
    server.start(block=False)
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{server.port}/knowledgebase/kbs", timeout=10
        ) as response:
            assert response.status == 200
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("from sedna.core.federated_learning import FederatedLearningV2", "Plato"),
        ("from sedna.service.server import AggregationServerV2", "Plato"),
        ("from sedna.algorithms.aggregation import MistNet", "Plato"),
        ("from sedna.service.client import AggregationClient", "gRPC"),
    ],
)
def test_names_not_provided_fail_with_a_clear_message(statement: str, message: str) -> None:
    with pytest.raises(ImportError, match=message):
        exec(statement, {})


def test_algorithm_registries_by_upstream_names() -> None:
    for name in ("Threshold", "CrossEntropy", "IBT", "Random", "CloudOnly", "EdgeOnly"):
        assert ClassFactory.get_cls(ClassType.HEM, name)
    assert ClassFactory.get_cls(ClassType.FL_AGG, "FedAvg")
    with pytest.raises(ValueError, match="'BertRouter' is not supported: it needs PyTorch"):
        ClassFactory.get_cls(ClassType.HEM, "BertRouter")
    with pytest.raises(ValueError, match="'MistNet' is not supported"):
        ClassFactory.get_cls(ClassType.FL_AGG, "MistNet")
    for name in ("ModelProbeFilter", "TaskAttrFilter"):
        try:
            assert ClassFactory.get_cls(ClassType.UTD, name)
        except ValueError as error:
            assert "not supported" in str(error)
    assert ClassType.CALLBACK == "post_process_callback"
    assert ClassFactory.is_exists(ClassType.HEM) and ClassFactory.is_exists(ClassType.HEM, "IBT")


def test_registries_fill_on_first_lookup_in_a_fresh_interpreter() -> None:
    # Upstream's `import sedna` registered every algorithm; a script that only imports the
    # class factory still finds them.
    code = (
        "from sedna.common.class_factory import ClassFactory, ClassType\n"
        "print(ClassFactory.get_cls(ClassType.HEM, 'IBT').__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "IBTFilter"


def test_config_and_context_as_upstream(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from sedna.common.config import BaseConfig, Context

    monkeypatch.setenv("TRAIN_DATASET_URL", "/data/train.txt")
    monkeypatch.delenv("JOB_NAME", raising=False)
    monkeypatch.setenv("SERVICE_NAME", "helmet")
    assert BaseConfig.train_dataset_url == "/data/train.txt"
    config = BaseConfig()
    assert config.train_dataset_url == "/data/train.txt" and config.job_name == "helmet"
    assert config.get("original_dataset_url", "fallback") == "fallback"
    config.from_json({"agg_uri": "grpc://x"})
    assert config.agg_uri == "grpc://x" and not hasattr(BaseConfig(), "agg_uri")
    assert BaseConfig.device_category == "CPU"
    monkeypatch.setenv("epochs", "")
    assert Context.get_parameters("epochs", 3) == 3  # empty means unset, as upstream
    monkeypatch.setenv("HEM_NAME", "IBT")
    monkeypatch.setenv("HEM_PARAMETERS", '[{"key": "threshold_img", "value": "0.9"}]')
    assert Context.get_algorithm_from_api("HEM", threshold_box=0.5) == {
        "method": "IBT",
        "param": {"threshold_box": 0.5, "threshold_img": "0.9"},
    }
    monkeypatch.delenv("UTD_NAME", raising=False)
    assert Context.get_algorithm_from_api("UTD") == {}
    params = tmp_path / "params.yaml"
    params.write_text("epochs: 5\n")
    monkeypatch.setenv("PARAMETERS", str(params))
    assert BaseConfig.parameter == {"epochs": 5}
    monkeypatch.setenv("PARAMETERS", '{"epochs": 6}')
    assert BaseConfig().parameter == {"epochs": 6}
    monkeypatch.setenv("PARAMETERS", "settings.py")
    with pytest.raises(ValueError, match="Python parameter files are not supported"):
        _ = BaseConfig.parameter


def test_file_ops_local_and_file_urls(tmp_path: Path) -> None:
    from sedna.common.errors import UnsupportedError
    from sedna.common.file_ops import FileOps

    source = tmp_path / "a" / "model.pkl"
    FileOps.make_base_dir(str(source))
    source.write_bytes(b"weights")
    copied = FileOps.download(f"file://{source}", str(tmp_path / "b" / "model.pkl"))
    assert Path(copied).read_bytes() == b"weights"
    assert FileOps.exists(f"file://{source}") and FileOps.is_local(str(source))
    assert FileOps.join_path("/models", "/v1", "m.pkl") == "/models/v1/m.pkl"
    assert FileOps.remove_path_prefix("/home/data/x.pkl", "/home/data/") == "/x.pkl"
    uploaded = FileOps.upload(copied, str(tmp_path / "c" / "m.pkl"))
    assert Path(uploaded).exists() and not Path(copied).exists()  # upload moves, as upstream
    dumped = FileOps.dump({"a": 1}, str(tmp_path / "d" / "obj.pkl"))
    assert FileOps.load(dumped) == {"a": 1}
    FileOps.clean_folder([str(tmp_path / "e"), None], clean=False)
    assert (tmp_path / "e").is_dir()
    assert FileOps.get_file_hash(str(source)) and FileOps.get_file_hash("") == ""
    for url in ("s3://bucket/model.pkl", "http://host/model.pkl", "gs://b/m"):
        assert FileOps.is_remote(url)
        with pytest.raises(UnsupportedError, match="storage is not supported"):
            FileOps.download(url, str(tmp_path / "x"))


class _Estimator:
    def __init__(self, lr: float = 0.1) -> None:
        self.lr = lr
        self.saved: str | None = None

    def train(self, train_data: Any, epochs: int = 1) -> dict[str, list[float]]:
        return {"loss": [0.5] * epochs}

    def predict(self, data: Any) -> list[int]:
        return [1 for _ in data]

    def save(self, model_path: str) -> None:
        Path(model_path).write_text(str(self.lr))
        self.saved = model_path

    def load(self, model_url: str) -> None:
        self.lr = float(Path(model_url).read_text())


def test_backend_wraps_any_estimator(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from sedna.backend import set_backend

    monkeypatch.setenv("BACKEND_TYPE", "KERAS")
    monkeypatch.setenv("MODEL_URL", str(tmp_path))
    monkeypatch.delenv("MODEL_NAME", raising=False)
    monkeypatch.delenv("BASE_MODEL_URL", raising=False)
    backend = set_backend(_Estimator)
    assert backend is not None and backend.model_name == "model_finetune_keras.pb"
    # Keyword arguments the estimator does not take are filtered out, as upstream.
    assert backend.train([1, 2], epochs=2, batch_size=8, lr=0.5) == {"loss": [0.5, 0.5]}
    assert backend.instance().lr == 0.5
    path = backend.save()
    assert path == str(tmp_path / "model_finetune_keras.pb") and Path(path).read_text() == "0.5"
    assert backend.model_info(path, relpath=str(tmp_path)) == [
        {"format": "pb", "url": "/model_finetune_keras.pb", "metrics": None}
    ]
    monkeypatch.setenv("BACKEND_TYPE", "SKLEARN")
    monkeypatch.setenv("MODEL_URL", str(tmp_path / "given.pkl"))
    other = set_backend(_Estimator(lr=0.2))
    assert other is not None and other.save() == str(tmp_path / "given.pkl")
    fresh = set_backend(_Estimator())
    assert fresh is not None
    fresh.load(str(tmp_path / "given.pkl"))
    assert fresh.instance().lr == 0.2 and fresh.predict([0, 0]) == [1, 1]


def test_job_base_reports_owner_info_and_results(monkeypatch: pytest.MonkeyPatch) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from sedna.core.base import JobBase

    received: list[tuple[str, dict[str, Any]]] = []
    tokens: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, json.loads(body)))
            tokens.append(self.headers.get("X-Sedna-Worker-Token"))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("LC_SERVER", f"http://127.0.0.1:{server.server_address[1]}")
        monkeypatch.setenv("WORKER_NAME", "train-0")
        monkeypatch.setenv("JOB_NAME", "job")
        monkeypatch.setenv("SEDNA_WORKER_TOKEN", "worker-secret")
        job = JobBase(_Estimator)
        job.job_kind = "federatedlearningjob"
        job.report_task_info({"currentRound": 1}, "running", [{"format": "pkl", "url": "/m"}])
    finally:
        server.shutdown()
        server.server_close()
    path, message = received[0]
    assert path == "/sedna/workers/train-0/info" and tokens == ["worker-secret"]
    assert message == {
        "name": "train-0",
        "namespace": "default",
        "ownerName": "job",
        "ownerKind": "federatedlearningjob",
        "kind": "train",
        "status": "running",
        "results": [{"format": "pkl", "url": "/m"}],
        "ownerInfo": {"currentRound": 1},
    }


def test_inference_server_serves_a_model_inference() -> None:
    from sedna.service.server import InferenceServer

    class Model:
        def inference(self, data: Any, post_process: Any = None) -> list[Any]:
            return [sum(row) for row in data]

    server = InferenceServer(Model(), servername="digits", host="127.0.0.1", http_port=0)
    server.start(block=False)
    try:
        url = f"http://127.0.0.1:{server.port}/digits"
        request = urllib.request.Request(
            f"{url}/predict",
            data=json.dumps({"data": [[1, 2], [3, 4]], "callback": None}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read()) == {"result": [3, 7]}
        with urllib.request.urlopen(url, timeout=10) as response:
            assert json.loads(response.read())["infos"][0]["path"] == "/digits/predict"
    finally:
        server.stop()
