"""Compare a federated global model with centralized and single-node training on the same data.

    python compare.py --data DIR --model global_model.npz --passes N

``DIR`` is what prepare_data.py wrote (``node<i>/train.csv``, ``test.csv``). Centralized and
single-node models train for ``N`` passes over their data (rounds x local epochs of the job),
from the same initial weights. Prints one JSON object: test accuracy of each.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from mlp import DigitsMLP  # the example's estimator, next to this script

from sedna.datasources import BaseDataSource, CSVDataParse


def _read(path: Path, data_type: str) -> BaseDataSource:
    return CSVDataParse(data_type=data_type).parse(str(path), label="label")


def main() -> None:
    """Train the baselines and print the accuracies as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True, help="the federated model (npz)")
    parser.add_argument("--passes", type=int, required=True, help="rounds x local epochs")
    args = parser.parse_args()
    test = _read(args.data / "test.csv", "test")
    nodes = sorted(args.data.glob("node*/train.csv"))
    splits = [_read(path, "train") for path in nodes]

    federated = DigitsMLP()
    federated.load(str(args.model))
    central_data = BaseDataSource(data_type="train")
    central_data.x = np.concatenate([np.asarray(s.x, dtype=np.float64) for s in splits])
    central_data.y = np.concatenate([np.asarray(s.y) for s in splits])
    central = DigitsMLP()
    central.train(central_data, epochs=args.passes)
    result = {
        "federated": federated.evaluate(test)["accuracy"],
        "centralized": central.evaluate(test)["accuracy"],
        "nodes": {},
    }
    for path, split in zip(nodes, splits, strict=True):
        alone = DigitsMLP()
        alone.train(split, epochs=args.passes)
        result["nodes"][path.parent.name] = {
            "samples": split.num_examples(),
            "accuracy": alone.evaluate(test)["accuracy"],
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
