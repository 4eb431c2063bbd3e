"""The example as a LifelongLearningJob: its Dataset, the job, and the files they point at.

``Workspace`` lays out the data (an empty CSV dataset index, the hold-out stream, the arriving
rows of the new task) and appends labelled rows; ``manifests`` gives the Dataset and the
LifelongLearningJob (seed 000's shape) running this directory's scripts as workers.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import tasks as digits

HERE = Path(__file__).resolve().parent
NAME = "digits-ll"
DATASET = "digits-ll-dataset"


class Workspace:
    """Where the example's dataset, streams and outputs live."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.index = root / "data" / "dataset.csv"
        self.holdout = root / "data" / "holdout.csv"
        self.arrivals = root / "data" / "arrivals.csv"
        self.output = root / "output"
        self.unseen = root / "unseen"

    def prepare(self) -> None:
        """The dataset index (header only), the hold-out under each transform, the arrivals."""
        self.index.parent.mkdir(parents=True, exist_ok=True)
        self.index.write_text(",".join(digits.HEADER) + "\n")
        for task in digits.TASKS:
            digits.write_csv(self.holdout, task, *digits.holdout(task))
        digits.write_csv(self.arrivals, "inverted", digits.task_rows("inverted")[0], None)

    def append(self, tasks: list[str]) -> int:
        """Append the 400 labelled rows of each of ``tasks`` to the dataset, interleaved (a
        stream of mixed tasks: every round's train and eval shares hold each task); returns
        the number of rows."""
        per_task = {task: digits.csv_rows(task, *digits.task_rows(task)) for task in tasks}
        rows = [per_task[task][i] for i in range(digits.ROWS_PER_TASK) for task in tasks]
        digits.append_rows(self.index, rows)
        return len(rows)

    def append_labelled_unseen(self) -> int:
        """Label the arrivals the inference worker saved as unseen, append them; returns rows."""
        saved = self.unseen / self.arrivals.stem / "unseen_samples.csv"
        x, y = digits.task_rows("inverted")
        truth = {tuple(row.round(4)): int(label) for row, label in zip(x, y, strict=True)}
        with saved.open(encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        labelled = []
        for row in rows:
            pixels = [float(row[f"p{i}"]) for i in range(64)]
            label = truth[tuple(round(v, 4) for v in pixels)]
            labelled.append([row["task"], *(row[f"p{i}"] for i in range(64)), str(label)])
        digits.append_rows(self.index, labelled)
        return len(labelled)

    def summary(self) -> dict[str, Any] | None:
        """The inference worker's last pass, if any."""
        try:
            return json.loads((self.output / "inference" / "summary.json").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def deployed_create_time(self) -> str | None:
        """The ``create_time`` of the index the job deployed, if any."""
        try:
            return json.loads((self.output / "deploy" / "index.json").read_text())["create_time"]
        except (FileNotFoundError, ValueError, KeyError):
            return None


def _template(node: str, script: str, env: dict[str, str]) -> dict[str, Any]:
    return {
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": f"{script}-worker",
                    "image": "sedna-py/lifelong-learning-digits:latest",
                    "command": [sys.executable],
                    "args": [str(HERE / f"{script}.py")],
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                }
            ],
        }
    }


def manifests(
    work: Workspace,
    *,
    node: str = "edge0",
    cloud: str = "cloud0",
    check_period: int = 5,
    threshold: float = 0.6,
) -> list[dict[str, Any]]:
    """The Dataset (on ``node``) and the LifelongLearningJob: train and eval on ``cloud``,
    inference on ``node``; train trigger ``num_of_samples > 300``; the eval filter deploys
    tasks whose macro precision is at least ``threshold``."""
    meta = {"namespace": "default"}
    eval_env = {
        "metrics": "precision_score",
        "metric_param": '{"average": "macro"}',
        "operator": ">=",
        "model_threshold": str(threshold),
    }
    infer_env = {
        "infer_dataset_url": f"{work.holdout};{work.arrivals}",
        "UT_SAVED_URL": str(work.unseen),
        "passes": "0",
        "pass_interval_seconds": "1",
    }
    return [
        {
            "apiVersion": "sedna.io/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": DATASET, **meta},
            "spec": {"url": str(work.index), "format": "csv", "nodeName": node},
        },
        {
            "apiVersion": "sedna.io/v1alpha1",
            "kind": "LifelongLearningJob",
            "metadata": {"name": NAME, **meta},
            "spec": {
                "dataset": {"name": DATASET, "trainProb": 0.8},
                "trainSpec": {
                    "template": _template(cloud, "train", {}),
                    "trigger": {
                        "checkPeriodSeconds": check_period,
                        "timer": {"start": "00:00", "end": "24:00"},
                        "condition": {
                            "operator": ">",
                            "threshold": 300,
                            "metric": "num_of_samples",
                        },
                    },
                },
                "evalSpec": {"template": _template(cloud, "eval", eval_env)},
                "deploySpec": {"template": _template(node, "inference", infer_env)},
                "outputDir": str(work.output),
            },
        },
    ]
