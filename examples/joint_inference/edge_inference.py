"""Edge worker of the digits joint inference example.

Streams the samples of ``input_url`` (JSON lines ``{"id", "x", "label"}``) through the small
model, sends hard ones to the cloud worker, writes one JSON line per sample to
``$OUTPUT_URL/edge_results.jsonl`` (when ``OUTPUT_URL`` is set) and exits 0 at the end.

Environment: ``MODEL_URL`` (edge model pickle), ``BIG_MODEL_IP``/``BIG_MODEL_PORT`` (cloud
worker), ``HEM_NAME``/``HEM_PARAMETERS`` (default ``CrossEntropy`` with
``threshold_cross_entropy`` 0.6), ``input_url``, ``repeat`` (passes over the input, default 1),
``batch_size`` (default 32), ``cloud_wait_seconds`` (how long to wait for the cloud worker
at start, default 30), ``OUTPUT_URL`` (results and ``summary.json``),
``LC_SERVER``/``WORKER_NAME`` (reports).
"""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
from digits import read_samples
from estimators import EdgeEstimator

from sedna.common.config import BaseConfig, Context
from sedna.core.joint_inference import InferenceResult, JointInference

DEFAULT_HEM = {"method": "CrossEntropy", "param": {"threshold_cross_entropy": 0.6}}


def main() -> int:
    """Run the stream; returns the exit code."""
    input_url = Context.get_parameters("input_url")
    if not input_url:
        print("edge_inference: set input_url to the samples file", file=sys.stderr)
        return 2
    batch_size = int(Context.get_parameters("batch_size", "32"))
    repeat = int(Context.get_parameters("repeat", "1"))
    hem = JointInference.get_hem_algorithm_from_config()
    if not hem["method"]:
        hem = {"method": DEFAULT_HEM["method"], "param": {**DEFAULT_HEM["param"], **hem["param"]}}

    in_flight: deque[dict[str, Any]] = deque()

    records = list(read_samples(Path(input_url)))

    def samples() -> Iterator[np.ndarray]:
        for _ in range(repeat):
            for record in records:
                in_flight.append(record)
                yield record["x"]

    correct = labelled = 0
    output = _open_output()
    with JointInference(estimator=EdgeEstimator, hard_example_mining=hem) as inference:
        wait = float(Context.get_parameters("cloud_wait_seconds", "30"))
        if inference.cloud is not None and not inference.wait_for_cloud(wait):
            print(f"cloud {inference.cloud.address} not ready after {wait:.0f}s; starting anyway")
        started = time.perf_counter()  # the stream only: not model loading nor the wait
        for result in inference.inference_stream(samples(), batch_size=batch_size):
            record = in_flight.popleft()
            prediction = int(np.argmax(result.final_result))
            if "label" in record:
                labelled += 1
                correct += int(prediction == record["label"])
            if output is not None:
                output.write(json.dumps(_output_line(record, prediction, result)) + "\n")
        elapsed = time.perf_counter() - started
        stats = inference.stats
    if output is not None:
        output.close()
        summary_file = Path(BaseConfig.output_url) / "summary.json"
        summary_file.write_text(
            json.dumps(
                {
                    "samples": stats.inference_number,
                    "hard": stats.hard_example_number,
                    "cloudFailures": stats.cloud_failures,
                    "accuracy": correct / labelled if labelled else None,
                    "seconds": elapsed,
                    "samplesPerSecond": stats.inference_number / elapsed if elapsed else None,
                }
            )
        )
    summary = (
        f"{stats.inference_number} samples, {stats.hard_example_number} hard "
        f"({stats.upload_cloud_ratio:.1%} sent to the cloud), "
        f"{stats.cloud_failures} answered on the edge because the cloud failed"
    )
    if labelled:
        summary += f", accuracy {correct / labelled:.4f}"
    print(summary)
    return 0


def _open_output() -> IO[str] | None:
    if not BaseConfig.output_url:
        return None
    directory = Path(BaseConfig.output_url)
    directory.mkdir(parents=True, exist_ok=True)
    return (directory / "edge_results.jsonl").open("w", encoding="utf-8")


def _output_line(record: dict[str, Any], prediction: int, result: InferenceResult) -> dict:
    cloud = None if result.cloud_result is None else int(np.argmax(result.cloud_result))
    return {
        "id": record.get("id"),
        "prediction": prediction,
        "is_hard": result.is_hard,
        "edge_prediction": int(np.argmax(result.edge_result)),
        "cloud_prediction": cloud,
    }


if __name__ == "__main__":
    sys.exit(main())
