"""Inference worker: stream the CSV files of ``infer_dataset_url`` (``;``-separated) through the
deployed knowledge, pass after pass.

Each pass writes ``OUTPUT_URL/inference/<file>.csv`` (task, label, prediction, unseen, task
used) and ``OUTPUT_URL/inference/summary.json`` (the index it served and, per file, accuracy and
unseen share by task); the unseen rows of a file go to ``UT_SAVED_URL/<file>/`` for labelling
(replaced at the end of each pass). ``passes`` (default 1; 0 = for ever) and
``pass_interval_seconds`` (1); ``drop_task_column=true`` hides the task column (attribute-free
detection). Counts go to the LC.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from estimator import TaskEstimator  # the example's estimator, next to this script

from sedna.common.config import BaseConfig, Context
from sedna.core.lifelong_learning import LifelongLearning
from sedna.datasources import CSVDataParse

BATCH = 60


def infer_file(ll: LifelongLearning, source: Path, out: Path) -> dict[str, Any]:
    """One file through ``ll``; returns per task ``{accuracy, unseen, samples}``."""
    data = CSVDataParse(data_type="eval").parse(source, label="label")
    tasks = data.x["task"].to_numpy()
    if Context.get_parameters("drop_task_column", "false") == "true":
        data.x = data.x.drop(columns=["task"])
    per: dict[str, list[tuple[int | None, int]]] = defaultdict(list)
    partial = out.with_name(f".{out.name}.part")
    with partial.open("w", encoding="utf-8", newline="") as handle:
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
                label = None if np.isnan(value) else int(value)
                task = tasks[start + i]
                correct = None if label is None else int(label == int(prediction))
                per[task].append((correct, int(flags[i])))
                shown = "" if label is None else label
                writer.writerow([task, shown, int(prediction), int(flags[i]), used[i]])
    partial.replace(out)
    return {
        task: {
            "samples": len(rows),
            "unseen": float(np.mean([u for _, u in rows])),
            "accuracy": None if rows[0][0] is None else float(np.mean([c for c, _ in rows])),
        }
        for task, rows in per.items()
    }


def main() -> int:
    """Serve pass after pass; print each pass's summary."""
    files = [Path(f) for f in str(Context.get_parameters("infer_dataset_url", "")).split(";") if f]
    if not files:
        raise SystemExit("set infer_dataset_url to the CSV file(s) to infer")
    output = Path(BaseConfig.output_url or ".") / "inference"
    output.mkdir(parents=True, exist_ok=True)
    saved = Path(Context.get_parameters("UT_SAVED_URL") or output / "unseen_samples")
    passes = int(Context.get_parameters("passes", "1"))
    interval = float(Context.get_parameters("pass_interval_seconds", "1"))
    ll = LifelongLearning(
        TaskEstimator,
        task_definition={"method": "TaskDefinitionByDataAttr", "param": {"attribute": ["task"]}},
    )
    done = 0
    while True:
        index = ll.serving_index()
        summary: dict[str, Any] = {"index_create_time": index.create_time, "pass": done + 1}
        for source in files:
            # This file's unseen rows, apart, staged during the pass and then moved into place
            # at once: a reader (the labeller) always sees a whole pass's rows.
            staging, target = saved / f".{source.stem}.part", saved / source.stem
            shutil.rmtree(staging, ignore_errors=True)
            os.environ["UT_SAVED_URL"] = str(staging)
            summary[source.stem] = infer_file(ll, source, output / f"{source.stem}.csv")
            target.mkdir(parents=True, exist_ok=True)
            produced = staging / "unseen_samples.csv"
            if produced.exists():
                os.replace(produced, target / "unseen_samples.csv")
            else:
                (target / "unseen_samples.csv").unlink(missing_ok=True)
        ll.report_inference_stats()
        partial = output / ".summary.json.part"
        partial.write_text(json.dumps(summary, indent=1))
        partial.replace(output / "summary.json")
        print(json.dumps(summary), flush=True)
        done += 1
        if passes and done >= passes:
            return 0
        time.sleep(interval)


if __name__ == "__main__":
    sys.exit(main())
