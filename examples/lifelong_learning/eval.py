"""Eval worker: score each task on ``TEST_DATASET_URL``, flag the deployable ones."""

from __future__ import annotations

import sys

from estimator import TaskEstimator  # the example's estimator, next to this script

from sedna.common.config import BaseConfig, Context
from sedna.core.lifelong_learning import LifelongLearning
from sedna.datasources import CSVDataParse


def main() -> int:
    """Evaluate the train round's index (``MODEL_URLS``)."""
    data = CSVDataParse(data_type="eval").parse(BaseConfig.test_dataset_url, label="label")
    ll = LifelongLearning(
        TaskEstimator,
        task_definition={"method": "TaskDefinitionByDataAttr", "param": {"attribute": ["task"]}},
    )
    scores = ll.evaluate(
        data,
        metrics=Context.get_parameters("metrics", "precision_score"),
        metrics_param=Context.get_parameters("metric_param", '{"average": "macro"}'),
    )
    print(scores, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
