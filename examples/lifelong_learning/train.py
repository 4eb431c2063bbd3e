"""Train worker: learn (round 1) or update (later rounds) the tasks of ``TRAIN_DATASET_URL``."""

from __future__ import annotations

import sys

from estimator import TaskEstimator  # the example's estimator, next to this script

from sedna.common.config import BaseConfig
from sedna.core.lifelong_learning import LifelongLearning
from sedna.datasources import CSVDataParse


def main() -> int:
    """Parse the round's CSV, train, report the index to the LC."""
    data = CSVDataParse(data_type="train").parse(BaseConfig.train_dataset_url, label="label")
    ll = LifelongLearning(
        TaskEstimator,
        task_definition={"method": "TaskDefinitionByDataAttr", "param": {"attribute": ["task"]}},
    )
    results = ll.train(data)
    print({task: r["samples"] for task, r in results.items()}, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
