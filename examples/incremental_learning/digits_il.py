"""The digits data and model of the incremental learning example (no download).

scikit-learn's bundled ``digits`` (1,797 8x8 images, pixels / 16) split 70/30 with a fixed seed:
the 1,257 training images arrive as labelled samples in batches, the 540 others are the
hold-out the inference worker streams. The model is a small MLP refined with ``partial_fit``
round after round; the initial model has seen 20 images (two of each digit).
"""

from __future__ import annotations

import json
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import precision_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

HERE = Path(__file__).resolve().parent
CLASSES = np.arange(10)
EPOCHS = 30
BATCH = 300
INITIAL_PER_CLASS = 2


def split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(pool_x, pool_y, holdout_x, holdout_y)``: the arriving samples, shuffled, and the
    hold-out."""
    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    x_pool, x_hold, y_pool, y_hold = train_test_split(
        x, y, test_size=0.3, stratify=y, random_state=0
    )
    order = np.random.RandomState(0).permutation(len(y_pool))
    return x_pool[order], y_pool[order], x_hold, y_hold


def initial_indices(y_pool: np.ndarray) -> list[int]:
    """The first two samples of each digit in the pool: the initial model's training set."""
    chosen: list[int] = []
    for digit in CLASSES:
        chosen += [int(i) for i in np.flatnonzero(y_pool == digit)[:INITIAL_PER_CLASS]]
    return sorted(chosen)


class DigitsMLP:
    """A Sedna estimator: ``train`` refines the loaded model with ``partial_fit``; ``predict``
    returns class probabilities (what ``CrossEntropy`` hard example mining judges)."""

    def __init__(self, **kwargs: Any) -> None:
        self.model: MLPClassifier | None = None

    def train(self, train_data: Any, valid_data: Any = None, **kwargs: Any) -> dict[str, float]:
        """``EPOCHS`` passes of ``partial_fit`` over ``train_data`` (one fixed permutation each)."""
        x, y = np.asarray(train_data.x, dtype=float), np.asarray(train_data.y).astype(int)
        if self.model is None:
            self.model = MLPClassifier(
                hidden_layer_sizes=(64,), learning_rate_init=0.01, random_state=0
            )
        for epoch in range(EPOCHS):
            order = np.random.RandomState(epoch).permutation(len(y))
            self.model.partial_fit(x[order], y[order], classes=CLASSES)
        return {"samples": float(len(y))}

    def evaluate(self, data: Any, **kwargs: Any) -> dict[str, float]:
        """Macro precision and accuracy on ``data``."""
        x, y = np.asarray(data.x, dtype=float), np.asarray(data.y).astype(int)
        predicted = np.argmax(self.predict(x), axis=1)
        precision = precision_score(y, predicted, average="macro", zero_division=0)
        return {"precision": float(precision), "accuracy": float(np.mean(predicted == y))}

    def predict(self, data: Any, **kwargs: Any) -> np.ndarray:
        """Class probabilities: ``(n, 10)`` for a batch, ``(10,)`` for one sample."""
        if self.model is None:
            raise RuntimeError("DigitsMLP has no model: call load() or train()")
        x = np.asarray(data, dtype=float)
        return (
            self.model.predict_proba(x[None, :])[0] if x.ndim == 1 else self.model.predict_proba(x)
        )

    def load(self, model_url: str, **kwargs: Any) -> None:
        """Read the pickled classifier."""
        with Path(model_url).open("rb") as handle:
            model = pickle.load(handle)
        if not isinstance(model, MLPClassifier):
            raise ValueError(f"{model_url} holds a {type(model).__name__}, not an MLPClassifier")
        self.model = model

    def save(self, model_path: str, **kwargs: Any) -> str:
        """Pickle the classifier to ``model_path``."""
        path = Path(model_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            pickle.dump(self.model, handle)
        return str(path)


def read_sample(path: str) -> np.ndarray:
    """One sample file: 64 numbers."""
    return np.loadtxt(path, dtype=float).reshape(-1)


def parse_line(line: str) -> tuple[np.ndarray, int]:
    """A round file's line ``<sample path> <label>`` as ``(sample, label)`` (``TxtDataParse``'s
    ``func``; the LC writes absolute sample paths into round files)."""
    path, _, label = line.partition(" ")
    return read_sample(path), int(label)


class Workspace:
    """The example's files under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.dataset = self.root / "dataset"
        self.index = self.dataset / "index.txt"
        self.models = self.root / "models"
        self.initial_model = self.models / "initial.pkl"
        self.deploy_model = self.models / "deploy.pkl"
        self.holdout = self.root / "holdout.jsonl"
        self.output = self.root / "output"
        self.hard_examples = self.root / "hard_examples"

    def prepare(self) -> None:
        """Sample files, an empty index, the hold-out, the initial and deploy models."""
        x_pool, y_pool, x_hold, y_hold = split()
        (self.dataset / "samples").mkdir(parents=True, exist_ok=True)
        for i, sample in enumerate(x_pool):
            np.savetxt(self.dataset / "samples" / f"{i}.txt", sample[None, :], fmt="%.4f")
        self.index.write_text("")
        with self.holdout.open("w", encoding="utf-8") as handle:
            for sample, label in zip(x_hold, y_hold, strict=True):
                handle.write(
                    json.dumps({"x": [float(v) for v in sample], "label": int(label)}) + "\n"
                )
        first = initial_indices(y_pool)
        data = _Data(x_pool[first], y_pool[first])
        model = DigitsMLP()
        model.train(data)
        model.save(str(self.initial_model))
        model.save(str(self.deploy_model))

    def batches(self) -> list[list[int]]:
        """The pool's samples not in the initial model, ``BATCH`` at a time."""
        _, y_pool, _, _ = split()
        used = set(initial_indices(y_pool))
        rest = [i for i in range(len(y_pool)) if i not in used]
        return [rest[i : i + BATCH] for i in range(0, len(rest) - BATCH + 1, BATCH)]

    def append(self, indices: list[int]) -> None:
        """Append labelled samples to the Dataset index (one write)."""
        _, y_pool, _, _ = split()
        lines = "".join(f"samples/{i}.txt {int(y_pool[i])}\n" for i in indices)
        with self.index.open("a", encoding="utf-8") as handle:
            handle.write(lines)


class _Data:
    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y


def read_holdout(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The hold-out samples and labels."""
    xs, ys = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        xs.append(record["x"])
        ys.append(record["label"])
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=int)


def iter_holdout(path: Path) -> Iterator[tuple[np.ndarray, int]]:
    """``(sample, label)`` pairs of the hold-out."""
    x, y = read_holdout(path)
    yield from zip(x, y, strict=True)


def _template(node: str, script: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The seed's worker template running one of this directory's scripts."""
    return {
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": f"{script}-worker",
                    "image": "sedna-py/incremental-learning-digits:latest",
                    "command": [sys.executable],
                    "args": [str(HERE / f"{script}.py")],
                    "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
                }
            ],
        }
    }


def job_manifests(
    work: Workspace,
    *,
    node: str = "edge0",
    hot: bool = True,
    threshold: float = 0.05,
    check_period: int = 5,
    poll_period: int = 1,
    name: str = "digits-demo",
) -> list[dict[str, Any]]:
    """Dataset, the two Models and the IncrementalLearningJob of seed 003 on this example:
    every worker on ``node``, train trigger ``num_of_samples > 200`` checked every
    ``check_period`` seconds, deploy trigger ``precision_delta > threshold``."""
    meta = {"namespace": "default"}
    return [
        {
            "apiVersion": "sedna.io/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": "incremental-dataset", **meta},
            "spec": {"url": str(work.index), "format": "txt", "nodeName": node},
        },
        *(
            {
                "apiVersion": "sedna.io/v1alpha1",
                "kind": "Model",
                "metadata": {"name": name, **meta},
                "spec": {"url": str(path), "format": "pkl"},
            }
            for name, path in (
                ("initial-model", work.initial_model),
                ("deploy-model", work.deploy_model),
            )
        ),
        {
            "apiVersion": "sedna.io/v1alpha1",
            "kind": "IncrementalLearningJob",
            "metadata": {"name": name, **meta},
            "spec": {
                "initialModel": {"name": "initial-model"},
                "dataset": {"name": "incremental-dataset", "trainProb": 0.8},
                "trainSpec": {
                    "template": _template(node, "train"),
                    "trigger": {
                        "checkPeriodSeconds": check_period,
                        "timer": {"start": "00:00", "end": "24:00"},
                        "condition": {
                            "operator": ">",
                            "threshold": 200,
                            "metric": "num_of_samples",
                        },
                    },
                },
                "evalSpec": {"template": _template(node, "eval")},
                "deploySpec": {
                    "model": {
                        "name": "deploy-model",
                        "hotUpdateEnabled": hot,
                        "pollPeriodSeconds": poll_period,
                    },
                    "trigger": {
                        "condition": {
                            "operator": ">",
                            "threshold": threshold,
                            "metric": "precision_delta",
                        }
                    },
                    "hardExampleMining": {
                        "name": "CrossEntropy",
                        "parameters": [{"key": "threshold_cross_entropy", "value": "0.5"}],
                    },
                    "template": _template(
                        node,
                        "inference",
                        {
                            "input_url": str(work.holdout),
                            "pass_interval": "0.2",
                            "HE_SAVED_URL": str(work.hard_examples),
                            "REPORT_INTERVAL_SECONDS": "1",
                        },
                    ),
                },
                "outputDir": str(work.output),
            },
        },
    ]
