"""Train worker: refine the base model on this round's samples (``TRAIN_DATASET_URL``).

Environment (set by the GM): ``TRAIN_DATASET_URL`` (the round's index file), ``BASE_MODEL_URL``
(the model to refine: the initial model, then the previous round's), ``MODEL_URL`` (the round's
output directory), ``LC_SERVER``/``WORKER_NAME`` (the report that completes the Train stage).
"""

from __future__ import annotations

import sys

from digits_il import DigitsMLP, parse_line

from sedna.common.config import BaseConfig
from sedna.core.incremental_learning import IncrementalLearning
from sedna.datasources import TxtDataParse


def main() -> int:
    """Train and report; returns the exit code."""
    if not BaseConfig.train_dataset_url:
        print("train: TRAIN_DATASET_URL is not set", file=sys.stderr)
        return 2
    data = TxtDataParse(data_type="train", func=parse_line).parse(BaseConfig.train_dataset_url)
    learner = IncrementalLearning(estimator=DigitsMLP)
    learner.train(train_data=data)
    print(f"train: {len(data.x)} samples, model saved to {learner.model_path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
