"""Joint inference on the digits test split: accuracy, share sent to the cloud, throughput.

    python benchmarks/joint_inference.py [--batch-size 32] [--threshold 0.6] [--cloud process]

Trains the example's edge and cloud models, serves the cloud model over loopback HTTP with
BigModelService (by default the example's ``cloud_inference.py`` worker in its own process, as
on another machine; ``--cloud thread`` runs it in this process instead), streams the test split
through each mode and prints a table. Targets: joint accuracy within 1 point of cloud-only with
at most a third of the samples sent to the cloud, and joint throughput at least half of
edge-only.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sedna.algorithms.hard_example_mining import BaseFilter, CrossEntropyFilter, EdgeOnlyFilter
from sedna.common.log import setup_logging
from sedna.common.report import LCReporter
from sedna.core.joint_inference import BigModelService, CloudClient, JointInference

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "joint_inference"

Run = Callable[[], tuple[np.ndarray, float]]


@dataclass
class Row:
    """One line of the table."""

    mode: str
    accuracy: float
    cloud_share: float
    samples_per_second: float


def _example(module: str) -> Any:
    """A module of the joint inference example (its directory is not a package)."""
    if str(EXAMPLE) not in sys.path:
        sys.path.insert(0, str(EXAMPLE))
    return importlib.import_module(module)


def measure(run: Run, samples: int, repeat: int) -> tuple[np.ndarray, float, float]:
    """Predictions, cloud share and best-of-``repeat`` samples/s of ``run``."""
    predictions, share = run()  # warm-up: connections, caches
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        predictions, share = run()
        best = min(best, time.perf_counter() - started)
    return predictions, share, samples / best


@contextlib.contextmanager
def serve_cloud(where: str, model: Any, workdir: str) -> Iterator[int]:
    """Serve the cloud model on 127.0.0.1; yields its port."""
    if where == "thread":
        service = BigModelService(model, host="127.0.0.1", port=0).start(block=False)
        try:
            yield service.port
        finally:
            service.stop()
        return
    model_path = model.save(str(Path(workdir) / "cloud_model.pkl"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "MODEL_URL": model_path,
        "BIG_MODEL_BIND_IP": "127.0.0.1",
        "BIG_MODEL_BIND_PORT": str(port),
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLE / "cloud_inference.py")], env=env, cwd=EXAMPLE
    )
    try:
        _wait_healthy(port, process)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_healthy(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"cloud worker exited with {process.returncode}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
        finally:
            connection.close()
    raise RuntimeError("cloud worker did not become healthy within 30 s")


def run_modes(args: argparse.Namespace, edge_model: Any, port: int, x: np.ndarray) -> list:
    """``(name, run)`` for each mode of the table."""
    batch = args.batch_size
    reporter = LCReporter(None, "benchmark")
    client = CloudClient("127.0.0.1", port, timeout=10)

    def labels(results: list[Any]) -> np.ndarray:
        return np.array([int(np.argmax(result.final_result)) for result in results])

    def through(hem: BaseFilter, mode: str) -> Run:
        def run() -> tuple[np.ndarray, float]:
            edge = JointInference(
                edge_model,
                hard_example_mining=hem,
                cloud_host="127.0.0.1",
                cloud_port=port,
                reporter=reporter,
            )
            if mode == "stream":
                results = list(
                    edge.inference_stream(
                        iter(x),
                        batch_size=batch,
                        cloud_batch_size=args.cloud_batch_size,
                        max_in_flight=args.in_flight,
                    )
                )
            elif mode == "batch":
                results = []
                for start in range(0, len(x), batch):
                    results.extend(edge.inference_batch(x[start : start + batch]))
            else:
                results = [edge.inference(row) for row in x]
            edge.close()
            return labels(results), edge.stats.upload_cloud_ratio

        return run

    def cloud_only() -> tuple[np.ndarray, float]:
        answers = []
        for start in range(0, len(x), batch):
            answers.extend(client.predict(x[start : start + batch], batch=True))
        return np.argmax(np.asarray(answers), axis=1), 1.0

    joint = CrossEntropyFilter(threshold_cross_entropy=args.threshold)
    return [
        ("edge-only", through(EdgeOnlyFilter(), "stream")),
        ("cloud-only", cloud_only),
        ("joint", through(joint, "stream")),
        ("joint, cloud call per edge batch", through(joint, "batch")),
        ("joint, one sample at a time", through(joint, "single")),
    ]


def main() -> None:
    """Run every mode, print the table and the target checks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threshold", type=float, default=0.6, help="threshold_cross_entropy")
    parser.add_argument("--cloud-batch-size", type=int, default=64, help="hard samples per request")
    parser.add_argument("--in-flight", type=int, default=1, help="cloud requests in the background")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per mode (best kept)")
    parser.add_argument("--passes", type=int, default=4, help="times the test split is streamed")
    parser.add_argument("--cloud", choices=("process", "thread"), default="process")
    args = parser.parse_args()
    setup_logging(level="WARNING")

    split = _example("digits").split
    estimators = _example("estimators")
    train, test = split()
    edge_model, cloud_model = estimators.EdgeEstimator(), estimators.CloudEstimator()
    edge_model.train(train)
    cloud_model.train(train)
    x = np.tile(np.asarray(test.x, dtype=np.float64), (args.passes, 1))
    y = np.tile(np.asarray(test.y), args.passes)

    table: list[Row] = []
    with (
        tempfile.TemporaryDirectory() as workdir,
        serve_cloud(args.cloud, cloud_model, workdir) as port,
    ):
        for name, run in run_modes(args, edge_model, port, x):
            predictions, share, speed = measure(run, len(x), args.repeat)
            table.append(Row(name, float(np.mean(predictions == y)), share, speed))

    print(
        f"digits test split x{args.passes} ({len(x)} samples); edge batch {args.batch_size}, "
        f"cloud batch {args.cloud_batch_size}, {args.in_flight} request(s) in flight; "
        f"CrossEntropy threshold {args.threshold}; cloud worker in a {args.cloud}; "
        f"best of {args.repeat} runs"
    )
    print(f"{'mode':<34} {'accuracy':>9} {'to cloud':>9} {'samples/s':>10}")
    for row in table:
        print(
            f"{row.mode:<34} {row.accuracy:>9.4f} {row.cloud_share:>9.1%} "
            f"{row.samples_per_second:>10.0f}"
        )
    edge, cloud, joint = table[0], table[1], table[2]
    checks = [
        ("joint accuracy within 1 point of cloud-only", cloud.accuracy - joint.accuracy <= 0.01),
        ("at most a third of the samples sent to the cloud", joint.cloud_share <= 1 / 3),
        (
            "joint throughput at least half of edge-only",
            joint.samples_per_second * 2 >= edge.samples_per_second,
        ),
    ]
    for text, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}: {text}")


if __name__ == "__main__":
    main()
