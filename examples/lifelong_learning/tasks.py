"""The example's data: scikit-learn's digits as three tasks made by transforming the images.

``upright`` (as is), ``mirrored`` (left-right flip) and ``inverted`` (1 - pixel), pixels / 16.
The pool (70 %, shuffled with a fixed seed) gives each task 400 labelled rows from disjoint
slices; the 540-sample hold-out, under each transform, is the inference stream.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

TASKS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "upright": lambda x: x,
    "mirrored": lambda x: x.reshape(-1, 8, 8)[:, :, ::-1].reshape(-1, 64),
    "inverted": lambda x: 1.0 - x,
}
ROWS_PER_TASK = 400
TRAIN_PROB = 0.8
HEADER = ["task", *(f"p{i}" for i in range(64)), "label"]


def _split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    x_pool, x_hold, y_pool, y_hold = train_test_split(
        x / 16.0, y, test_size=0.3, stratify=y, random_state=0
    )
    order = np.random.RandomState(0).permutation(len(x_pool))
    return x_pool[order], y_pool[order], x_hold, y_hold


def task_rows(task: str) -> tuple[np.ndarray, np.ndarray]:
    """The 400 labelled pool rows of ``task`` (its own slice of the pool)."""
    x_pool, y_pool, _, _ = _split()
    start = list(TASKS).index(task) * ROWS_PER_TASK
    rows = slice(start, start + ROWS_PER_TASK)
    return TASKS[task](x_pool[rows]), y_pool[rows]


def holdout(task: str) -> tuple[np.ndarray, np.ndarray]:
    """The hold-out under ``task``'s transform."""
    _, _, x_hold, y_hold = _split()
    return TASKS[task](x_hold), y_hold


def csv_rows(task: str, x: np.ndarray, y: np.ndarray | None) -> list[list[str]]:
    """Rows ``task,p0..p63,label`` of ``x`` (empty labels when ``y`` is None)."""
    return [
        [task, *(f"{v:.6g}" for v in row), "" if y is None else str(int(y[i]))]
        for i, row in enumerate(x)
    ]


def append_rows(path: Path, rows: list[list[str]]) -> None:
    """Append ``rows`` to the CSV at ``path`` (header first if new) in one write, so an LC
    polling the file sees them arrive together, not as a stream of single rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    if not path.exists():
        writer.writerow(HEADER)
    writer.writerows(rows)
    with path.open("a", encoding="utf-8", newline="") as handle:
        handle.write(buffer.getvalue())


def write_csv(path: Path, task: str, x: np.ndarray, y: np.ndarray | None) -> None:
    """Write rows ``task,p0..p63,label`` (empty labels when ``y`` is None), header first."""
    append_rows(path, csv_rows(task, x, y))


def split_train_eval(task: str) -> tuple[tuple, tuple]:
    """``trainProb`` 0.8 of a task's rows: (x, y) to train on and (x, y) to evaluate on."""
    x, y = task_rows(task)
    cut = int(TRAIN_PROB * len(x))
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])
