"""Joint inference scripts written the way upstream Sedna's example is
(tests/compat_scripts/joint_inference), run unchanged through ``sedna up``."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from tests.compat_support import SCRIPTS, container, model
from tests.e2e import Cluster
from tests.services import wait_for

pytestmark = pytest.mark.slow

FRAMES = 60


def _cloud_ready(cluster: Cluster, name: str) -> bool:
    annotations = cluster.get("jointinferenceservices", name)["metadata"].get("annotations") or {}
    port = json.loads(annotations.get("sedna.io/ports", "{}")).get("cloud")
    if not port:
        return False
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
            return True
    except OSError:
        return False


def test_upstream_shaped_joint_inference_scripts(cluster: Cluster, tmp_path: Path) -> None:
    digits = load_digits()
    x, y = digits.data, digits.target
    models = tmp_path / "models"
    models.mkdir()
    joblib.dump(LogisticRegression(max_iter=50).fit(x[:60], y[:60]), models / "little.pkl")
    joblib.dump(LogisticRegression(max_iter=500).fit(x[:1200], y[:1200]), models / "big.pkl")
    frames = tmp_path / "video"
    frames.mkdir()
    for index in range(FRAMES):
        np.save(frames / f"frame{index}.npy", x[1300 + index])
    out = {kind: tmp_path / "out" / kind for kind in ("all", "hard_edge", "hard_cloud")}
    camera = frames / "index.txt"
    edge_env = {
        "video_url": str(camera),
        "all_examples_inference_output": str(out["all"]),
        "hard_example_edge_inference_output": str(out["hard_edge"]),
        "hard_example_cloud_inference_output": str(out["hard_cloud"]),
        "LC_PERIOD": "1",
    }
    service = {
        "apiVersion": "sedna.io/v1alpha1",
        "kind": "JointInferenceService",
        "metadata": {"name": "helmet-detection-inference-example", "namespace": "default"},
        "spec": {
            "edgeWorker": {
                "model": {"name": "helmet-detection-inference-little-model"},
                "hardExampleMining": {
                    "name": "CrossEntropy",
                    "parameters": [{"key": "threshold_cross_entropy", "value": "0.9"}],
                },
                "template": {
                    "spec": {
                        "nodeName": "edge0",
                        "containers": [
                            container(
                                SCRIPTS / "joint_inference/little_model/little_model.py", edge_env
                            )
                        ],
                    }
                },
            },
            "cloudWorker": {
                "model": {"name": "helmet-detection-inference-big-model"},
                "template": {
                    "spec": {
                        "nodeName": "cloud0",
                        "containers": [
                            container(SCRIPTS / "joint_inference/big_model/big_model.py", {})
                        ],
                    }
                },
            },
        },
    }
    cluster.apply(
        [
            model("helmet-detection-inference-little-model", models / "little.pkl"),
            model("helmet-detection-inference-big-model", models / "big.pkl"),
            service,
        ]
    )
    name = service["metadata"]["name"]
    wait_for(lambda: _cloud_ready(cluster, name), 90, "the big model service to answer")
    # The "camera" opens now: the edge script has been waiting for it, as upstream's does.
    camera.write_text(
        "".join(f"frame{i}.npy,{y[1300 + i]}\n" for i in range(FRAMES)), encoding="utf-8"
    )

    def metrics() -> dict[str, str]:
        status = cluster.status("jointinferenceservices", name)
        return {m["key"]: m["value"] for m in status.get("metrics") or []}

    wait_for(lambda: metrics().get("inferenceNumber") == str(FRAMES), 90, "every frame counted")
    counts = metrics()
    hard = int(counts["hardExampleNumber"])
    assert 0 < hard < FRAMES
    assert len(list(out["all"].glob("*.json"))) == FRAMES
    assert len(list(out["hard_edge"].glob("*.json"))) == hard
    # Every hard frame was answered by the cloud (none fell back to the edge).
    assert len(list(out["hard_cloud"].glob("*.json"))) == hard
    assert int(counts.get("cloudFailures", "0")) == 0
    records = [json.loads(p.read_text()) for p in out["all"].glob("*.json")]
    accuracy = np.mean([r["prediction"] == r["label"] for r in records])
    assert accuracy > 0.85, accuracy
