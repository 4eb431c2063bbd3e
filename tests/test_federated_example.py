"""The digits federated learning example: the job manifest fits the API, and the hand-run
script trains the three-node job with real processes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from apis.registry import parse_resource

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "federated_learning"


def test_manifest_is_a_valid_federated_learning_job() -> None:
    documents = list(yaml.safe_load_all((EXAMPLE / "federated_job.yaml").read_text()))
    resources = [parse_resource(document) for document in documents]
    kinds = [type(resource).__name__ for resource in resources]
    assert kinds == ["Dataset", "Dataset", "Dataset", "Model", "FederatedLearningJob"]
    job = resources[-1]
    datasets = {r.metadata.name: r for r in resources if type(r).__name__ == "Dataset"}
    assert job.spec.aggregation_worker.model.name == resources[3].metadata.name
    assert len(job.spec.training_workers) == 3
    for worker in job.spec.training_workers:
        dataset = datasets[worker.dataset.name]
        assert worker.template.spec.node_name == dataset.spec.node_name
        assert worker.template.spec.containers[0].command == ["python", "train.py"]


def test_run_local_trains_three_nodes(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE / "run_local.py"),
            "--workdir",
            str(tmp_path),
            "--rounds",
            "3",
            "--epochs",
            "1",
            "--compression",
            "int8",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr + "".join(
        path.read_text() for path in (tmp_path / "logs").glob("*.log")
    )
    trainers = re.findall(r"digits-federated-train-(\d): trained rounds 1\.\.3", result.stdout)
    assert sorted(trainers) == ["0", "1", "2"]
    match = re.search(r"global model: test accuracy ([0-9.]+)", result.stdout)
    assert match is not None
    # Ten classes: chance is 0.1; three short rounds already do far better.
    assert float(match.group(1)) > 0.5
    assert (tmp_path / "model" / "global_model.npz").is_file()
    for node in range(3):
        assert (tmp_path / "data" / f"node{node}" / "train.csv").is_file()
