"""Train the edge and cloud digit models and write them, with the test samples, to a directory.

    python train_models.py OUTPUT_DIR

writes ``OUTPUT_DIR/edge_model.pkl``, ``OUTPUT_DIR/cloud_model.pkl`` and
``OUTPUT_DIR/test_samples.jsonl`` (the edge worker's input).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from digits import split, write_samples
from estimators import CloudEstimator, EdgeEstimator


def main() -> None:
    """Train both models and print their test accuracy."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", type=Path, help="directory for the models and samples")
    args = parser.parse_args()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    train, test = split()
    for name, estimator in (("edge", EdgeEstimator()), ("cloud", CloudEstimator())):
        started = time.perf_counter()
        metrics = estimator.train(train, valid_data=test)
        path = estimator.save(str(args.output_dir / f"{name}_model.pkl"))
        print(
            f"{name} model: test accuracy {metrics['accuracy']:.4f}, "
            f"trained in {time.perf_counter() - started:.2f}s -> {path}"
        )
    samples = args.output_dir / "test_samples.jsonl"
    write_samples(test, samples)
    print(f"{test.num_examples()} test samples -> {samples}")


if __name__ == "__main__":
    main()
