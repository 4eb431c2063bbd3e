"""Inference worker: stream the hold-out again and again, with hot model update and hard
example mining, and report each pass's accuracy and hard examples.

Environment: ``MODEL_URL`` (the deploy model), ``HEM_NAME``/``HEM_PARAMETERS`` (the job's
``hardExampleMining``), ``MODEL_HOT_UPDATE``/``MODEL_POLL_PERIOD_SECONDS``/
``MODEL_HOT_UPDATE_CONFIG`` (set by the GM when ``hotUpdateEnabled``), ``HE_SAVED_URL`` (where
hard examples are saved), ``input_url`` (the hold-out, JSON lines), ``pass_interval`` (seconds
between passes, default 1), ``passes`` (stop after this many; default: run until stopped).
Each pass prints one JSON line: pass, pid, model, accuracy, hard examples.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from digits_il import DigitsMLP, read_holdout

from sedna.common.config import Context
from sedna.core.incremental_learning import IncrementalLearning


def main() -> int:
    """Run passes over the hold-out; returns the exit code."""
    input_url = Context.get_parameters("input_url")
    if not input_url:
        print("inference: set input_url to the hold-out file", file=sys.stderr)
        return 2
    x, y = read_holdout(Path(input_url))
    interval = float(Context.get_parameters("pass_interval", "1"))
    passes = int(Context.get_parameters("passes", "0"))
    hem = IncrementalLearning.get_hem_algorithm_from_config()
    learner = IncrementalLearning(estimator=DigitsMLP, hard_example_mining=hem)
    number = 0
    while passes == 0 or number < passes:
        number += 1
        correct = hard = 0
        for sample, label in zip(x, y, strict=True):
            _, probabilities, is_hard = learner.inference(sample)
            correct += int(np.argmax(probabilities) == label)
            hard += int(is_hard)
        accuracy = correct / len(y)
        line = {
            "pass": number,
            "pid": os.getpid(),
            "model": learner.model_url,
            "accuracy": round(accuracy, 4),
            "hardExamples": hard,
        }
        print(json.dumps(line), flush=True)
        learner.report_progress(
            **{
                "pass": number,
                "accuracy": round(accuracy, 4),
                "passHardExamples": hard,
                "pid": os.getpid(),
            }
        )
        time.sleep(interval)
    learner.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
