"""Federated learning scripts written the way upstream Sedna's example is
(tests/compat_scripts/federated_learning), run unchanged through ``sedna up``: the global model
is the user's estimator's own file and the Model object gets its status."""

from __future__ import annotations

import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits

from sedna_cli.stack import Stack, StackOptions
from tests.compat_support import SCRIPTS, container, model
from tests.e2e import Cluster
from tests.services import wait_for

pytestmark = pytest.mark.slow

EDGES = ("edge0", "edge1")


@pytest.fixture
def fl_cluster(tmp_path: Path) -> Iterator[Cluster]:
    stack = Stack(StackOptions(data_dir=tmp_path / "sedna", nodes=["cloud0", *EDGES]))
    stack.start()
    try:
        yield Cluster(stack, tmp_path / "kube-cache")
    finally:
        stack.stop()


def test_upstream_shaped_federated_learning_scripts(fl_cluster: Cluster, tmp_path: Path) -> None:
    digits = load_digits()
    x, y = digits.data, digits.target
    datasets = []
    for index, node in enumerate(EDGES):
        folder = tmp_path / "data" / node
        (folder / "images").mkdir(parents=True)
        lines = []
        for sample in range(index * 400, index * 400 + 400):
            np.save(folder / "images" / f"{sample}.npy", x[sample].reshape(8, 8))
            lines.append(f"images/{sample}.npy,{y[sample]}\n")
        (folder / "train.txt").write_text("".join(lines), encoding="utf-8")
        datasets.append(
            {
                "apiVersion": "sedna.io/v1alpha1",
                "kind": "Dataset",
                "metadata": {"name": f"surface-defect-{node}", "namespace": "default"},
                "spec": {"url": str(folder / "train.txt"), "format": "txt", "nodeName": node},
            }
        )
    model_file = tmp_path / "models" / "surface_defect.pkl"
    job = {
        "apiVersion": "sedna.io/v1alpha1",
        "kind": "FederatedLearningJob",
        "metadata": {"name": "surface-defect-detection", "namespace": "default"},
        "spec": {
            "aggregationWorker": {
                "model": {"name": "surface-defect-detection-model"},
                "template": {
                    "spec": {
                        "nodeName": "cloud0",
                        "containers": [
                            container(
                                SCRIPTS / "federated_learning/aggregation_worker/aggregate.py",
                                {"exit_round": "3"},
                            )
                        ],
                    }
                },
            },
            "trainingWorkers": [
                {
                    "dataset": {"name": f"surface-defect-{node}"},
                    "template": {
                        "spec": {
                            "nodeName": node,
                            "containers": [
                                container(
                                    SCRIPTS / "federated_learning/training_worker/train.py",
                                    {"batch_size": "32", "learning_rate": "0.5", "epochs": "2"},
                                )
                            ],
                        }
                    },
                }
                for node in EDGES
            ],
        },
    }
    fl_cluster.apply([*datasets, model("surface-defect-detection-model", model_file), job])

    def status() -> dict[str, Any]:
        return fl_cluster.status("federatedlearningjobs", "surface-defect-detection")

    wait_for(lambda: status().get("phase") == "Succeeded", 180, "the job to succeed")
    final = status()
    assert final["currentRound"] == 3
    # The global model was written by the user's own Estimator.save, so its load reads it.
    sys.path.insert(0, str(SCRIPTS / "federated_learning/training_worker"))
    try:
        from interface import Estimator  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    estimator = Estimator()
    estimator.load(str(model_file))
    with open(model_file, "rb") as saved:
        assert set(pickle.load(saved)) == {"weights"}
    test_x = x[1000:1400].reshape(-1, 8, 8) / 16.0
    accuracy = float(np.mean(estimator.predict(test_x) == y[1000:1400]))
    assert accuracy > 0.8, accuracy
    # The trainers' list-valued metrics (a per-epoch history) reached the job's status.
    metrics = {m["key"]: m["value"] for m in final.get("metrics") or []}
    assert "loss" in metrics and "accuracy" in metrics, final
    assert final.get("outputModel") == str(model_file)
    # The Model the job names got the new version's time and metrics.
    model_status = fl_cluster.status("models", "surface-defect-detection-model")
    assert model_status.get("updateTime"), model_status
    model_metrics = {m["key"] for m in model_status.get("metrics") or []}
    assert {"loss", "accuracy"} <= model_metrics, model_status
