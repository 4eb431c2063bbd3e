"""Federated training as upstream Sedna's scripts expect it: the user's estimator saves each
round's global model at MODEL_URL (so its load reads it back), list-valued metrics (a Keras
history) are reported, keyword arguments the estimator does not take are left out."""

from __future__ import annotations

import json
import pickle
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sedna.core.federated_learning import AggregationServer, FederatedLearning, TrainerSettings
from tests.federated_support import loopback_settings

TOKEN = "compat-token"
JOB = "compat-fl"


class PickleEstimator:
    """Saves its weights as a pickle (not npz) and returns per-epoch metric lists."""

    def __init__(self) -> None:
        self.weights = [np.zeros((2, 2)), np.zeros(2)]

    def get_weights(self) -> list[np.ndarray]:
        return [w.copy() for w in self.weights]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self.weights = [np.array(w) for w in weights]

    def train(self, train_data: Any, valid_data: Any = None, epochs: int = 1) -> dict[str, Any]:
        self.weights = [w + 1.0 for w in self.weights]
        return {"loss": [0.5 / (e + 1) for e in range(epochs)], "note": "ok", "skip": {"a": 1}}

    def save(self, model_path: str) -> None:
        with open(model_path, "wb") as out:
            pickle.dump({"weights": self.weights}, out)

    def load(self, model_url: str) -> None:
        with open(model_url, "rb") as source:
            self.weights = pickle.load(source)["weights"]


@pytest.fixture
def lc_reports(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("LC_SERVER", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("WORKER_NAME", "compat-trainer")
    monkeypatch.setenv("JOB_NAME", JOB)
    yield received
    server.shutdown()
    server.server_close()


def test_trainer_saves_with_the_users_estimator_and_reports_list_metrics(
    lc_reports: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    model_url = tmp_path / "models" / "global.pkl"
    monkeypatch.setenv("MODEL_URL", str(model_url))
    aggregator = AggregationServer(
        settings=loopback_settings(JOB, TOKEN, participants=1, exit_round=2)
    ).serve()
    try:
        settings = TrainerSettings(
            job=JOB, token=TOKEN, worker="compat-trainer", agg_port=aggregator.port
        )
        estimator = PickleEstimator()
        learner = FederatedLearning(estimator=estimator, aggregation="FedAvg", settings=settings)
        # batch_size is not a parameter of this estimator's train: left out, as upstream.
        summary = learner.train(
            train_data=[1, 2, 3], epochs=2, batch_size=8, post_process=lambda e: e.weights
        )
        assert aggregator.wait(10)
    finally:
        aggregator.stop(grace=0)
    assert summary.final_round == 2 and summary.model_path == str(model_url)
    estimator.predict = lambda data: [sum(data)]  # type: ignore[attr-defined]
    assert learner.inference([1, 2], post_process=lambda r: r[0] * 10) == 30
    np.testing.assert_allclose(summary.output[0], np.full((2, 2), 2.0))
    # The user's own load reads the saved global model back.
    reloaded = PickleEstimator()
    reloaded.load(str(model_url))
    np.testing.assert_allclose(reloaded.weights[0], np.full((2, 2), 2.0))
    assert not list(model_url.parent.glob(".tmp-*"))  # written atomically, nothing left over
    final = [r for r in lc_reports if r["kind"] == "train" and r["status"] == "completed"]
    assert final, lc_reports
    model = final[-1]["models"][0]
    assert model["url"] == str(model_url) and model["format"] == "pkl"
    assert model["metrics"] == {"loss": [0.5, 0.25], "note": "ok"}


def test_an_estimator_without_save_gets_an_npz(
    lc_reports: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    class NoSave(PickleEstimator):
        save = None  # type: ignore[assignment]

    monkeypatch.setenv("MODEL_URL", str(tmp_path / "models"))
    monkeypatch.delenv("MODEL_NAME", raising=False)
    aggregator = AggregationServer(
        settings=loopback_settings(JOB, TOKEN, participants=1, exit_round=1)
    ).serve()
    try:
        settings = TrainerSettings(
            job=JOB, token=TOKEN, worker="compat-trainer", agg_port=aggregator.port
        )
        summary = FederatedLearning(NoSave(), settings=settings).train([1])
    finally:
        aggregator.stop(grace=0)
    assert summary.model_path == str(tmp_path / "models" / "global_model.npz")
    with np.load(summary.model_path) as archive:
        assert archive.files == ["layer_0000", "layer_0001"]


def test_gm_gives_trainers_the_model_and_updates_the_model_status() -> None:
    from apis import OwnerReference, parse_resource, to_canonical
    from gm.kinds import policy_for_kind
    from gm.plan import PlanContext
    from tests.test_apis import load_sample

    job = to_canonical(parse_resource(load_sample("edgeai_federatedlearningtask.yaml")))
    ctx = PlanContext(
        model_urls={"model-demo1": "/m/global.pkl"},
        dataset_urls={f"dataset-demo{i}": f"/d/{i}.txt" for i in range(3)},
        default_node_address="127.0.0.1",
        ports={"aggregation": 22000},
        job_token="t0k",
    )
    policy = policy_for_kind("FederatedLearningJob")
    owner = OwnerReference(api_version="sedna.io/v1alpha1", kind="FederatedLearningJob", name="j")
    agg, *trainers = policy.plan(job, owner, ctx, {})  # type: ignore[union-attr]
    # As upstream's GM: every training worker saves the global model at the Model's URL.
    assert {(t.env["MODEL_URL"], t.env["MODEL_NAME"]) for t in trainers} == {
        ("/m/global.pkl", "model-demo1")
    }
    assert agg.env["MODEL_URL"] == "/m/global.pkl"
    status = {
        "outputModel": "/m/global.pkl",
        "metrics": [{"key": "loss", "value": "[0.5, 0.25]"}],
        "workers": [
            {"name": "j-aggregation", "role": "aggregation", "lastUpdateTime": "t9"},
            {"name": "j-training-0", "role": "training", "lastUpdateTime": "t2"},
            {"name": "j-training-1", "role": "training", "lastUpdateTime": "t3"},
        ],
    }
    assert policy.input_statuses(job, status) == [  # type: ignore[union-attr]
        ("Model", "model-demo1", {"updateTime": "t3", "metrics": status["metrics"]})
    ]
    assert policy.input_statuses(job, {"workers": status["workers"]}) == []  # type: ignore[union-attr]
