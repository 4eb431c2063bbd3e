"""The digits data of the example: one fixed train/test split of scikit-learn's bundled set."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from sedna.datasources import BaseDataSource

TEST_SIZE = 0.3
SEED = 0


def split() -> tuple[BaseDataSource, BaseDataSource]:
    """The train and test data sources (stratified, fixed seed)."""
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_SIZE, stratify=y, random_state=SEED
    )
    train, test = BaseDataSource(data_type="train"), BaseDataSource(data_type="test")
    train.x, train.y = x_train, y_train
    test.x, test.y = x_test, y_test
    return train, test


def write_samples(data: BaseDataSource, path: Path) -> None:
    """Write samples as JSON lines ``{"id", "x", "label"}`` (the edge worker's input)."""
    with path.open("w", encoding="utf-8") as handle:
        for index, (x, label) in enumerate(zip(data.x, data.y, strict=True)):
            record = {"id": index, "x": [int(v) for v in x], "label": int(label)}
            handle.write(json.dumps(record) + "\n")


def read_samples(path: Path) -> Iterator[dict[str, Any]]:
    """Stream the records of a JSON lines sample file; ``x`` as a float array."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                record["x"] = np.asarray(record["x"], dtype=np.float64)
            except (ValueError, KeyError, TypeError) as error:
                raise ValueError(f"{path}, line {number}: not a sample record ({error})") from None
            yield record
