"""Issue 4 end to end: the seed's legacy joint inference shape runs the digits example."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e import Cluster
from tests.services import wait_for

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "joint_inference"


def _legacy_service(models: Path, output: Path) -> dict:
    """The seed 001 sample, with the example's scripts and the models trained here."""

    def worker_spec(boot_file: str, parameters: dict[str, str]) -> dict:
        return {
            "scriptDir": str(EXAMPLE),
            "scriptBootFile": boot_file,
            "frameworkType": "scikit-learn",
            "frameworkVersion": "1.x",
            "parameters": [{"key": k, "value": v} for k, v in parameters.items()],
        }

    return {
        "apiVersion": "neptune.io/v1alpha1",
        "kind": "JointInferenceService",
        "metadata": {"name": "helmet-detection-demo", "namespace": "default"},
        "spec": {
            "edgeWorker": {
                "name": "edgeworker",
                "model": {"name": "small-model"},
                "nodeName": "edge0",
                "hardExampleAlgorithm": {"name": "CrossEntropy"},
                "workerSpec": worker_spec(
                    "edge_inference.py",
                    {
                        "input_url": str(models / "test_samples.jsonl"),
                        "OUTPUT_URL": str(output),
                        "REPORT_INTERVAL_SECONDS": "1",
                    },
                ),
            },
            "cloudWorker": {
                "name": "work",
                "model": {"name": "big-model"},
                "nodeName": "cloud0",
                "workerSpec": worker_spec("cloud_inference.py", {}),
            },
        },
    }


def test_legacy_sample_shape_runs_the_example_and_counts_reach_status(
    cluster: Cluster, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    subprocess.run(
        [sys.executable, str(EXAMPLE / "train_models.py"), str(models)], check=True, cwd=EXAMPLE
    )
    cluster.apply(
        [
            {
                "apiVersion": "sedna.io/v1alpha1",
                "kind": "Model",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"url": str(models / f"{role}_model.pkl"), "format": "pkl"},
            }
            for name, role in (("small-model", "edge"), ("big-model", "cloud"))
        ]
    )
    output = tmp_path / "out"
    cluster.apply(_legacy_service(models, output))

    def metrics() -> dict[str, str]:
        obj = cluster.api.get_namespaced_custom_object(
            "neptune.io",
            "v1alpha1",
            "default",
            "neptunejointinferenceservices",
            "helmet-detection-demo",
        )
        return {m["key"]: m["value"] for m in (obj.get("status") or {}).get("metrics") or []}

    wait_for(lambda: metrics().get("inferenceNumber") == "540", 60, "all 540 samples counted")
    counts = metrics()
    summary = json.loads((output / "summary.json").read_text())
    assert int(counts["hardExampleNumber"]) == summary["hard"] > 0
    assert summary["cloudFailures"] == 0
    assert summary["accuracy"] > 0.98
    # Each worker ran on the node the sample names.
    edge_lc, cloud_lc = cluster.stack.lcs["edge0"], cluster.stack.lcs["cloud0"]
    assert edge_lc.runtime.status("helmet-detection-demo-edge") is not None
    assert cloud_lc.runtime.status("helmet-detection-demo-cloud") is not None
    assert edge_lc.runtime.status("helmet-detection-demo-cloud") is None
    table = cluster.kubectl("get", "neptunejointinferenceservices")
    assert "helmet-detection-demo" in table and "Running" in table
