"""Lifelong learning scripts written the way upstream Sedna's atcii (thermal comfort) example is
(tests/compat_scripts/lifelong_learning), run unchanged through ``sedna up``: one round trains
a model per task, evaluates and deploys; the inference worker answers the rows it tails and
flags the row of an unknown season as unseen."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.compat_support import SCRIPTS, container
from tests.e2e import Cluster
from tests.services import wait_for

pytestmark = pytest.mark.slow

WORKERS = SCRIPTS / "lifelong_learning"
NAME = "atcii-classifier-demo"
HEADER = [
    "Season",
    "Cooling startegy_building level",
    "Air temperature (C)",
    "Relative humidity (%)",
    "Air velocity (m/s)",
    "Thermal preference",
]
# (season, cooling strategy) -> the temperatures between which people want no change.
COMFORT = {("Summer", "Air Conditioned"): (23.0, 26.0), ("Winter", "Mixed Mode"): (19.0, 22.0)}


def rows(season: str, cooling: str, count: int, seed: int) -> list[list[Any]]:
    """``count`` rows: 0 (cooler) above the comfort band, 2 (warmer) below it, else 1."""
    low, high = COMFORT.get((season, cooling), (21.0, 24.0))
    rng = np.random.default_rng(seed)
    out = []
    for t in rng.uniform(low - 5, high + 5, count).round(1):
        label = 0 if t > high else 2 if t < low else 1
        out.append([season, cooling, float(t), round(float(rng.uniform(30, 70)), 1), 0.1, label])
    return out


def write(path: Path, table: list[list[Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([HEADER, *table])
    return path


def tsv(path: Path) -> list[list[str]]:
    """A tab-separated output of the inference script, header dropped (absent: no rows)."""
    if not path.exists():
        return []
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:]]


def test_upstream_shaped_lifelong_learning_scripts(cluster: Cluster, tmp_path: Path) -> None:
    (summer, winter) = COMFORT
    mixed = [
        r for pair in zip(rows(*summer, 200, 1), rows(*winter, 200, 2), strict=True) for r in pair
    ]
    dataset = write(tmp_path / "data" / "atcii.csv", mixed)
    infer = [*rows(*summer, 10, 3), *rows(*winter, 10, 4), *rows("Spring", "Mixed Mode", 1, 5)]
    infer_url = write(tmp_path / "infer" / "infer.csv", infer)
    ut_saved = tmp_path / "unseen"

    def template(node: str, script: str, env: dict[str, str]) -> dict[str, Any]:
        worker = container(WORKERS / f"{script}.py", env)
        return {"spec": {"nodeName": node, "containers": [worker]}}

    job = {
        "apiVersion": "sedna.io/v1alpha1",
        "kind": "LifelongLearningJob",
        "metadata": {"name": NAME, "namespace": "default"},
        "spec": {
            "dataset": {"name": "lifelong-dataset", "trainProb": 0.8},
            "trainSpec": {
                "template": template("cloud0", "train", {"early_stopping_rounds": "10"}),
                "trigger": {
                    "checkPeriodSeconds": 1,
                    "timer": {"start": "00:00", "end": "24:00"},
                    "condition": {"operator": ">", "threshold": 100, "metric": "num_of_samples"},
                },
            },
            "evalSpec": {
                "template": template(
                    "cloud0",
                    "eval",
                    {
                        "metrics": "precision_score",
                        "metric_param": "{'average': 'micro'}",
                        "model_threshold": "0.5",
                    },
                )
            },
            "deploySpec": {
                "template": template(
                    "edge0",
                    "inference",
                    {
                        "UT_SAVED_URL": str(ut_saved),
                        "infer_dataset_url": str(infer_url),
                        "REPORT_INTERVAL_SECONDS": "0",
                    },
                )
            },
            "outputDir": str(tmp_path / "output"),
        },
    }
    dataset_object = {
        "apiVersion": "sedna.io/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": "lifelong-dataset", "namespace": "default"},
        "spec": {"url": str(dataset), "format": "csv", "nodeName": "edge0"},
    }
    cluster.apply([dataset_object, job])

    status: dict[str, Any] = {}

    def round_done() -> bool:
        status.update(cluster.status("lifelonglearningjobs", NAME))
        return (status.get("round"), status.get("state")) == (1, "Waiting")

    wait_for(round_done, 180, "round 1 to train, evaluate and deploy")
    conditions = [(c.get("stage"), c["type"]) for c in status["conditions"]]
    for stage in ("Train", "Eval", "Deploy"):
        assert (stage, "Completed") in conditions, status["conditions"]
    kb = status["knowledgeBase"]
    models = {m["modelID"]: m for m in kb["AIModels"]["listOfAIModels"]}
    assert set(models) == {"Summer_Air Conditioned", "Winter_Mixed Mode"}, kb
    assert all(m["averagePrecision"] > 0.8 for m in models.values()), kb
    assert kb["AIClasses"]["listOfAIClasses"] == ["0", "1", "2"], kb

    # The inference worker tails the file: every row answered, the spring row unseen.
    out = Path(f"{infer_url}_out.csv")
    wait_for(lambda: len(tsv(out)) == len(infer), 90, "the inference worker's answers")
    answered = tsv(out)
    seen = answered[:-1]
    correct = [int(r[-1]) == int(r[-2]) for r in seen]
    assert np.mean(correct) >= 0.85, answered
    unseen = tsv(ut_saved / "unseen_sample.csv")
    assert [r[0] for r in unseen] == ["Spring"], unseen
    # The library also saved it for labelling, in the dataset's columns.
    with (ut_saved / "unseen_samples.csv").open(encoding="utf-8") as handle:
        saved = list(csv.DictReader(handle))
    assert [r["Season"] for r in saved] == ["Spring"], saved

    def counted() -> bool:
        samples = cluster.status("lifelonglearningjobs", NAME)["knowledgeBase"]["samples"]
        return samples["numberOfUnseenSample"] == 1

    wait_for(counted, 30, "the unseen count in status.knowledgeBase")
