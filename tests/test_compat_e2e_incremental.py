"""Incremental learning scripts written the way upstream Sedna's helmet detection example is
(tests/compat_scripts/incremental_learning), run unchanged through ``sedna up``: one round
trains, evaluates and hot-deploys, and the inference worker serves the new model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from tests.compat_support import SCRIPTS, container, model
from tests.e2e import Cluster
from tests.services import wait_for

pytestmark = pytest.mark.slow

WORKERS = SCRIPTS / "incremental_learning"
PARAMS = {"class_names": ",".join(map(str, range(10))), "input_shape": "8,8"}
FRAMES = 500  # the "video": one pass is 500 frames, every 10th inferred


def write_index(folder: Path, name: str, x: np.ndarray, y: np.ndarray, start: int) -> Path:
    """``<folder>/<name>.txt`` indexing one ``.npy`` image per sample, ``images/<i>.npy <y>``."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for i, (image, label) in enumerate(zip(x, y, strict=True), start=start):
        np.save(folder / "images" / f"{i}.npy", image.reshape(8, 8))
        lines.append(f"images/{i}.npy {label}\n")
    index = folder / f"{name}.txt"
    index.write_text("".join(lines), encoding="utf-8")
    return index


def frames(he_saved: Path, first: int, last: int) -> list[dict[str, Any]]:
    """The inference script's per-frame records with ``first <= frame <= last`` (a file being
    written is left for the next look)."""
    records = []
    for path in he_saved.glob("*-*.json"):
        frame, hard = (int(part) for part in path.stem.split("-"))
        if first <= frame <= last:
            try:
                records.append({**json.loads(path.read_text(encoding="utf-8")), "hard": hard})
            except json.JSONDecodeError:
                continue
    return records


def test_upstream_shaped_incremental_learning_scripts(cluster: Cluster, tmp_path: Path) -> None:
    x, y = load_digits(return_X_y=True)
    dataset = write_index(tmp_path / "data", "train_data", x[:400], y[:400], 0)
    video = write_index(tmp_path / "video", "video", x[1000:1500], y[1000:1500], 1000)
    # The initial model has only ever seen the digits 0-4.
    known = np.flatnonzero(y[1500:] < 5)[:50] + 1500
    initial = LogisticRegression(max_iter=200).fit(x[known] / 16.0, y[known])
    (tmp_path / "models").mkdir()
    base_model, deploy_model = tmp_path / "models/base.pkl", tmp_path / "models/deploy.pkl"
    joblib.dump(initial, base_model)
    joblib.dump(initial, deploy_model)
    he_saved = tmp_path / "he"

    def template(script: str, env: dict[str, str]) -> dict[str, Any]:
        worker = container(WORKERS / f"{script}.py", {**PARAMS, **env})
        return {"spec": {"nodeName": "edge0", "containers": [worker]}}

    job = {
        "apiVersion": "sedna.io/v1alpha1",
        "kind": "IncrementalLearningJob",
        "metadata": {"name": "helmet-detection-demo", "namespace": "default"},
        "spec": {
            "initialModel": {"name": "initial-model"},
            "dataset": {"name": "incremental-dataset", "trainProb": 0.8},
            "trainSpec": {
                "template": template("train", {"epochs": "1", "batch_size": "32"}),
                "trigger": {
                    "checkPeriodSeconds": 1,
                    "timer": {"start": "00:00", "end": "24:00"},
                    "condition": {"operator": ">", "threshold": 100, "metric": "num_of_samples"},
                },
            },
            "evalSpec": {"template": template("eval", {})},
            "deploySpec": {
                "model": {"name": "deploy-model", "hotUpdateEnabled": True, "pollPeriodSeconds": 1},
                "trigger": {
                    "condition": {"operator": ">", "threshold": 0.5, "metric": "precision_delta[9]"}
                },
                "hardExampleMining": {
                    "name": "IBT",
                    "parameters": [
                        {"key": "threshold_img", "value": "0.9"},
                        {"key": "threshold_box", "value": "0.9"},
                    ],
                },
                "template": template(
                    "inference", {"video_url": str(video), "HE_SAVED_URL": str(he_saved)}
                ),
            },
            "outputDir": str(tmp_path / "output"),
        },
    }
    dataset_object = {
        "apiVersion": "sedna.io/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": "incremental-dataset", "namespace": "default"},
        "spec": {"url": str(dataset), "format": "txt", "nodeName": "edge0"},
    }
    cluster.apply(
        [
            dataset_object,
            model("initial-model", base_model),
            model("deploy-model", deploy_model),
            job,
        ]
    )
    # The first pass of the video is served by the initial model.
    wait_for(lambda: len(frames(he_saved, 1, FRAMES)) == FRAMES // 10, 60, "a first pass")

    status: dict[str, Any] = {}

    def round_done() -> bool:
        status.update(cluster.status("incrementallearningjobs", "helmet-detection-demo"))
        return (status.get("round"), status.get("stage"), status.get("state")) == (
            1,
            "Train",
            "Waiting",
        )

    wait_for(round_done, 120, "round 1 to train, evaluate and deploy")
    conditions = [(c.get("stage"), c["type"]) for c in status["conditions"]]
    for stage in ("Train", "Eval", "Deploy"):
        assert (stage, "Completed") in conditions, status["conditions"]
    assert status["lastDecision"]["deploy"] is True, status["lastDecision"]
    # The model trained by the user's Estimator.save becomes the deploy Model's file ...
    trained = Path(status["trainedModel"]["url"])
    wait_for(
        lambda: deploy_model.read_bytes() == trained.read_bytes(), 20, "the deploy model's file"
    )
    assert list(joblib.load(deploy_model).classes_) == list(range(10))
    # ... and the running inference worker serves it: a whole pass after the deploy.
    deployed_at = max(int(p.stem.split("-")[0]) for p in he_saved.glob("*-*.json"))
    start = (deployed_at // FRAMES + 1) * FRAMES + 1
    wait_for(
        lambda: len(frames(he_saved, start, start + FRAMES - 1)) == FRAMES // 10,
        60,
        "a pass after the deploy",
    )
    before, after = frames(he_saved, 1, FRAMES), frames(he_saved, start, start + FRAMES - 1)

    def accuracy(records: list[dict[str, Any]]) -> float:
        return float(np.mean([r["prediction"] == r["label"] for r in records]))

    assert accuracy(before) < 0.7 and accuracy(after) > 0.85, (accuracy(before), accuracy(after))
    hard_before, hard_after = sum(r["hard"] for r in before), sum(r["hard"] for r in after)
    assert hard_after < hard_before, (hard_before, hard_after)
    # The library also saved each hard example, indexed in the Dataset's txt format.
    index = (he_saved / "index.txt").read_text(encoding="utf-8").split()
    assert len(index) >= hard_before
    assert np.loadtxt(he_saved / index[0]).size == 64
