"""Issue 5 end to end: federated learning jobs through the control plane, survivors included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sedna_cli.stack import Stack, StackOptions
from tests.e2e import Cluster
from tests.services import wait_for
from tests.test_apis import load_sample

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "federated_learning"
EDGES = ("edge0", "edge1", "edge2")


@pytest.fixture
def fl_cluster(tmp_path: Path) -> Iterator[Cluster]:
    nodes = ["cloud0", "solar-corona-cloud", *EDGES]  # the last three as in the seed sample
    stack = Stack(StackOptions(data_dir=tmp_path / "sedna", nodes=nodes))
    stack.start()
    try:
        yield Cluster(stack, tmp_path / "kube-cache")
    finally:
        stack.stop()


@pytest.fixture
def digits_data(tmp_path: Path) -> Path:
    out = tmp_path / "data"
    subprocess.run(
        [sys.executable, str(EXAMPLE / "prepare_data.py"), "--out", str(out)],
        check=True,
        cwd=EXAMPLE,
        capture_output=True,
    )
    return out


def _env(values: dict[str, str]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in values.items()]


def _container(script: str, env: dict[str, str]) -> dict[str, Any]:
    return {
        "name": script.removesuffix(".py"),
        "image": "sedna-py/worker",
        "command": ["python", script],
        "workingDir": str(EXAMPLE),
        "env": _env(env),
    }


def _job(
    data: Path,
    models: Path,
    rounds: int,
    trainer_restart: str = "OnFailure",
    **aggregator_parameters: str,
) -> list[dict[str, Any]]:
    datasets = [
        {
            "apiVersion": "sedna.io/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": f"digits-{node}", "namespace": "default"},
            "spec": {
                "url": str(data / f"node{i}" / "train.csv"),
                "format": "csv",
                "nodeName": node,
            },
        }
        for i, node in enumerate(EDGES)
    ]
    model = {
        "apiVersion": "sedna.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": "digits-global", "namespace": "default"},
        "spec": {"url": str(models / "global_model.npz"), "format": "npz"},
    }
    trainer_env = {"epochs": "1", "learning_rate": "0.1", "compression": "none"}
    job = {
        "apiVersion": "sedna.io/v1alpha1",
        "kind": "FederatedLearningJob",
        "metadata": {"name": "digits", "namespace": "default"},
        "spec": {
            "aggregationWorker": {
                "model": {"name": "digits-global"},
                "template": {
                    "spec": {
                        "nodeName": "cloud0",
                        "containers": [
                            _container(
                                "aggregate.py",
                                {
                                    "exit_round": str(rounds),
                                    "min_node_number": "2",
                                    "round_timeout_seconds": "6",
                                    **aggregator_parameters,
                                },
                            )
                        ],
                    }
                },
            },
            "trainingWorkers": [
                {
                    "dataset": {"name": f"digits-{node}"},
                    "template": {
                        "spec": {
                            "nodeName": node,
                            "restartPolicy": trainer_restart,
                            "containers": [_container("train.py", trainer_env)],
                        }
                    },
                }
                for node in EDGES
            ],
        },
    }
    return [*datasets, model, job]


def _gm_metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def _status(cluster: Cluster) -> dict[str, Any]:
    return cluster.status("federatedlearningjobs", "digits")


def test_job_runs_on_the_named_nodes_to_succeeded_with_status(
    fl_cluster: Cluster, digits_data: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    fl_cluster.apply(_job(digits_data, models, rounds=3))
    wait_for(lambda: _status(fl_cluster).get("phase") == "Succeeded", 180, "the job to succeed")
    status = _status(fl_cluster)
    assert status["currentRound"] == status["aggregationCount"] == 3
    assert status["completionTime"]
    assert status["conditions"][-1]["type"] == "Complete"
    assert {n["nodeName"] for n in status["nodes"]} == set(EDGES)
    assert all(n["numberOfSamples"] > 0 for n in status["nodes"])
    assert status["outputModel"].endswith(".npz") and Path(status["outputModel"]).exists()
    workers = {w["name"]: w for w in status["workers"]}
    assert workers["digits-aggregation"]["nodeName"] == "cloud0"
    assert [workers[f"digits-training-{i}"]["nodeName"] for i in range(3)] == list(EDGES)
    table = fl_cluster.kubectl("get", "fl", "digits")
    assert "Succeeded" in table and " 3 " in table
    # Operators see the same on the GM's /metrics, read from its caches at scrape time.
    gm = fl_cluster.stack.gm
    assert gm is not None
    # The status just read may be newer than the GM's informer cache: wait for the cache.
    wait_for(
        lambda: (
            'sedna_job_phase{kind="FederatedLearningJob",name="digits",namespace="default",'
            'phase="Succeeded"} 1.0' in _gm_metrics(gm.ops.port)
        ),
        30,
        "the GM's metrics to show the job",
    )
    text = _gm_metrics(gm.ops.port)
    assert (
        'sedna_federated_current_round{kind="FederatedLearningJob",name="digits",'
        'namespace="default"} 3.0' in text
    )
    for node in status["nodes"]:
        assert (
            f'sedna_federated_node_samples{{kind="FederatedLearningJob",name="digits",namespace="default",'
            f'node="{node["nodeName"]}"}} {float(node["numberOfSamples"])}' in text
        )


def test_a_killed_trainer_leaves_the_others_to_finish_the_job(
    fl_cluster: Cluster, digits_data: Path, tmp_path: Path
) -> None:
    # Enough rounds that the kill lands mid-job: a round here takes a fraction of a second.
    # Once two updates are in, the rounds after the kill wait 1 s for the third, not 6 s.
    job = _job(
        digits_data,
        tmp_path / "models",
        rounds=8,
        trainer_restart="Never",
        round_wait_after_min_seconds="1",
    )
    fl_cluster.apply(job)
    wait_for(lambda: (_status(fl_cluster).get("currentRound") or 0) >= 1, 120, "round 1")
    victim = fl_cluster.stack.lcs["edge1"].runtime.status("digits-training-1")
    assert victim is not None and victim.pid and victim.phase == "Running"
    os.killpg(victim.pid, signal.SIGKILL)
    wait_for(lambda: _status(fl_cluster).get("phase") == "Succeeded", 180, "the job to succeed")
    status = _status(fl_cluster)
    assert status["currentRound"] == 8
    assert status["failed"] >= 1, status
    workers = {w["name"]: w for w in status["workers"]}
    assert workers["digits-training-1"]["phase"] == "Failed"


def test_a_killed_aggregator_resumes_from_its_checkpoint(
    fl_cluster: Cluster, digits_data: Path, tmp_path: Path
) -> None:
    fl_cluster.apply(_job(digits_data, tmp_path / "models", rounds=4))
    wait_for(lambda: (_status(fl_cluster).get("currentRound") or 0) >= 2, 120, "round 2")
    aggregator = fl_cluster.stack.lcs["cloud0"].runtime.status("digits-aggregation")
    assert aggregator is not None and aggregator.pid
    round_before = _status(fl_cluster)["currentRound"]
    os.killpg(aggregator.pid, signal.SIGKILL)
    wait_for(lambda: _status(fl_cluster).get("phase") == "Succeeded", 240, "the job to succeed")
    status = _status(fl_cluster)
    assert status["currentRound"] == 4 >= round_before
    assert {w["name"]: w for w in status["workers"]}["digits-aggregation"]["restartCount"] >= 1


def test_the_seed_federated_learning_task_shape_runs_to_succeeded(
    fl_cluster: Cluster, digits_data: Path, tmp_path: Path
) -> None:
    """The seed 002 sample as written, with only the code directory pointed at the example."""
    task = load_sample("edgeai_federatedlearningtask.yaml")
    agg = task["spec"]["aggregationWorker"]["workerSpec"]
    agg["scriptDir"] = str(EXAMPLE)
    for worker in task["spec"]["trainingWorkers"]:
        worker["workerSpec"]["scriptDir"] = str(EXAMPLE)
    resources = _job(digits_data, tmp_path / "models", rounds=3)[:4]  # Datasets and the Model
    for index, dataset in enumerate(resources[:3]):
        dataset["metadata"]["name"] = f"dataset-demo{index}"
    resources[3]["metadata"]["name"] = "model-demo1"
    fl_cluster.apply([*resources, task])

    def status() -> dict[str, Any]:
        obj = fl_cluster.api.get_namespaced_custom_object(
            "edgeai.io",
            "v1alpha1",
            "default",
            "federatedlearningtasks",
            "magnetic-tile-defect-detection",
        )
        return obj.get("status") or {}

    wait_for(lambda: status().get("phase") == "Succeeded", 180, "the task to succeed")
    final = status()
    assert final["currentRound"] == 3
    assert {n["nodeName"] for n in final["nodes"]} == set(EDGES)
    workers = {w["name"]: w["nodeName"] for w in final["workers"]}
    assert workers["magnetic-tile-defect-detection-aggregation"] == "solar-corona-cloud"
    assert "Succeeded" in fl_cluster.kubectl("get", "federatedlearningtasks")
