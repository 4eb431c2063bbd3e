"""Eval worker: score the trained and the deployed model (``MODEL_URLS``) on the round's eval
samples (``TEST_DATASET_URL``) and report their precision; the GM decides the deploy."""

from __future__ import annotations

import sys

from digits_il import DigitsMLP, parse_line

from sedna.common.config import BaseConfig
from sedna.core.incremental_learning import IncrementalLearning
from sedna.datasources import TxtDataParse


def main() -> int:
    """Evaluate and report; returns the exit code."""
    if not BaseConfig.test_dataset_url:
        print("eval: TEST_DATASET_URL is not set", file=sys.stderr)
        return 2
    data = TxtDataParse(data_type="eval", func=parse_line).parse(BaseConfig.test_dataset_url)
    results = IncrementalLearning(estimator=DigitsMLP).evaluate(data)
    for result in results:
        print(f"eval: {result['url']}: {result['metrics']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
