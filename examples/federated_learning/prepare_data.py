"""Write the digits example's data: a held-out test set and one label-skewed training split per
edge node, as CSV files (the Dataset index format ``csv``, label column ``label``).

    python prepare_data.py --out data --nodes 3 --alpha 0.5 --seed 0
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

COLUMNS = [f"pixel_{i}" for i in range(64)] + ["label"]


def split_digits(
    nodes: int = 3, alpha: float = 0.5, seed: int = 0
) -> tuple[list[tuple[np.ndarray, np.ndarray]], tuple[np.ndarray, np.ndarray]]:
    """Per-node training splits skewed by label (Dirichlet(``alpha``) class shares per node,
    seeded) and the stratified 25 % test set."""
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data, digits.target, test_size=0.25, stratify=digits.target, random_state=seed
    )
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(y_train), dtype=np.int64)
    for label in range(10):
        members = rng.permutation(np.flatnonzero(y_train == label))
        shares = rng.dirichlet(np.full(nodes, alpha))
        cuts = (np.cumsum(shares)[:-1] * len(members)).astype(int)
        for node, part in enumerate(np.split(members, cuts)):
            assignment[part] = node
    splits = [(x_train[assignment == node], y_train[assignment == node]) for node in range(nodes)]
    return splits, (x_test, y_test)


def write_csv(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    """One row per sample: 64 pixel columns, then the label."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for features, label in zip(x.astype(int), y.astype(int), strict=True):
            writer.writerow([*features.tolist(), int(label)])


def prepare(out: Path, nodes: int = 3, alpha: float = 0.5, seed: int = 0) -> list[Path]:
    """Write ``node<i>/train.csv`` for each node and ``test.csv``; returns the train paths."""
    splits, (x_test, y_test) = split_digits(nodes, alpha, seed)
    paths = []
    for node, (x, y) in enumerate(splits):
        path = out / f"node{node}" / "train.csv"
        write_csv(path, x, y)
        paths.append(path)
    write_csv(out / "test.csv", x_test, y_test)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("data"))
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--alpha", type=float, default=0.5, help="label skew (lower: more skew)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for node, path in enumerate(prepare(args.out, args.nodes, args.alpha, args.seed)):
        labels = np.loadtxt(path, delimiter=",", skiprows=1, usecols=64).astype(int)
        counts = np.bincount(labels, minlength=10)
        print(f"node{node}: {len(labels):4d} samples, per label {counts.tolist()} -> {path}")
    print(f"test set -> {args.out / 'test.csv'}")


if __name__ == "__main__":
    main()
