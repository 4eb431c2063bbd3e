"""Inference worker: stream ``infer_dataset_url`` (CSV) through the deployed knowledge.

Writes ``OUTPUT_URL/inference.csv`` (task, label, prediction, unseen, task used) and saves
unseen rows under ``UT_SAVED_URL`` for labelling; reports its counts to the LC.
``drop_task_column=true`` hides the task column (attribute-free detection).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
from estimator import TaskEstimator  # the example's estimator, next to this script

from sedna.common.config import BaseConfig, Context
from sedna.core.lifelong_learning import LifelongLearning
from sedna.datasources import CSVDataParse

BATCH = 60


def main() -> int:
    """Infer batch by batch; print the accuracy and unseen share."""
    data = CSVDataParse(data_type="eval").parse(
        Context.get_parameters("infer_dataset_url"), label="label"
    )
    tasks = data.x["task"].to_numpy()
    if Context.get_parameters("drop_task_column", "false") == "true":
        data.x = data.x.drop(columns=["task"])
    ll = LifelongLearning(
        TaskEstimator,
        task_definition={"method": "TaskDefinitionByDataAttr", "param": {"attribute": ["task"]}},
    )
    out = Path(BaseConfig.output_url or ".") / "inference.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    correct = unseen_total = 0
    with out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["task", "label", "prediction", "unseen", "task_used"])
        for start in range(0, len(data.x), BATCH):
            batch = CSVDataParse(data_type="test")
            batch.x, batch.y = (
                data.x.iloc[start : start + BATCH],
                data.y.iloc[start : start + BATCH],
            )
            result, unseen, used = ll.inference(batch)
            flags = [unseen] if isinstance(unseen, bool) else unseen
            for i, prediction in enumerate(result):
                value = batch.y.iloc[i]
                label = "" if np.isnan(value) else str(int(value))
                correct += int(label == str(int(prediction)))
                unseen_total += int(flags[i])
                writer.writerow([tasks[start + i], label, int(prediction), int(flags[i]), used[i]])
    ll.report_inference_stats()
    print(
        {"samples": len(data.x), "accuracy": correct / len(data.x), "unseen": unseen_total},
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
