"""Failures of real processes: a training worker killed mid-push, the aggregator killed
mid-job and restarted from its checkpoint."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sedna.core.federated_learning import (
    AggregationServer,
    FederatedLearning,
    TrainerSettings,
    TrainingSummary,
    load_npz,
)
from tests.federated_support import loopback_settings

TOKEN = "recovery-token"
JOB = "recovery-test"

# A training worker that streams half of its update and then hangs until it is killed.
DYING_WORKER = """
import sys, time
import grpc
from sedna.core.federated_learning.service import pb2, pb2_grpc

port = int(sys.argv[1])
header = pb2.PushHeader(job=sys.argv[2], worker="dying", round=1, sample_count=50, codec="none")
header.tensors.add(name="layer_0000", dtype="float32", shape=[512, 512], codec="none",
                   encoded_size=512 * 512 * 4)
header.tensors.add(name="layer_0001", dtype="float32", shape=[2], codec="none", encoded_size=8)

def messages():
    yield pb2.PushMessage(header=header)
    yield pb2.PushMessage(chunk=bytes(1 << 19))
    print("streaming", flush=True)
    time.sleep(3600)

channel = grpc.insecure_channel(f"127.0.0.1:{port}")
stub = pb2_grpc.WeightExchangeStub(channel)
stub.Push(messages(), metadata=(("sedna-job-token", sys.argv[3]),))
"""

AGGREGATOR = """
from sedna.common.log import setup_logging
from sedna.core.federated_learning import AggregationServer

setup_logging("INFO", json_format=True)
AggregationServer().start()
"""


class SlowStepEstimator:
    """Adds ``step`` to every weight per round, taking ``seconds`` to do it."""

    def __init__(self, step: float, shape: tuple[int, ...], seconds: float = 0.0) -> None:
        self.step = step
        self.seconds = seconds
        self.weights = [np.zeros(shape, np.float32), np.zeros(2, np.float32)]

    def get_weights(self) -> list[np.ndarray]:
        return [w.copy() for w in self.weights]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self.weights = [np.array(w) for w in weights]

    def train(self, train_data: Any, valid_data: Any = None, **kwargs: Any) -> None:
        time.sleep(self.seconds)
        self.weights = [w + self.step for w in self.weights]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _train_in_threads(
    trainers: dict[str, tuple[FederatedLearning, int]],
) -> tuple[dict[str, TrainingSummary], list[BaseException], list[threading.Thread]]:
    results: dict[str, TrainingSummary] = {}
    errors: list[BaseException] = []

    def run(name: str, trainer: FederatedLearning, samples: int) -> None:
        try:
            results[name] = trainer.train(list(range(samples)))
        except BaseException as error:
            errors.append(error)

    threads = [
        threading.Thread(target=run, args=(name, trainer, samples), daemon=True)
        for name, (trainer, samples) in trainers.items()
    ]
    for thread in threads:
        thread.start()
    return results, errors, threads


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def test_round_completes_when_a_worker_dies_mid_push(
    processes: list[subprocess.Popen[str]],
) -> None:
    aggregator = AggregationServer(
        settings=loopback_settings(
            JOB,
            TOKEN,
            participants=3,
            min_node_number=2,
            round_timeout_seconds=1.5,
            exit_round=2,
            exit_grace_seconds=5,
        )
    ).serve()
    try:
        dying = subprocess.Popen(
            [sys.executable, "-c", DYING_WORKER, str(aggregator.port), JOB, TOKEN],
            stdout=subprocess.PIPE,
            text=True,
        )
        processes.append(dying)
        assert dying.stdout is not None and dying.stdout.readline().strip() == "streaming"

        def trainer(name: str, step: float) -> FederatedLearning:
            settings = TrainerSettings(job=JOB, token=TOKEN, worker=name, agg_port=aggregator.port)
            return FederatedLearning(SlowStepEstimator(step, (512, 512)), settings=settings)

        results, errors, threads = _train_in_threads(
            {"good-a": (trainer("good-a", 1.0), 10), "good-b": (trainer("good-b", 3.0), 30)}
        )
        # Both good updates are in, the third is half-way through its stream: kill it.
        deadline = time.monotonic() + 30
        while len(aggregator.status().updates) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert set(aggregator.status().updates) == {"good-a", "good-b"}
        dying.send_signal(signal.SIGKILL)
        dying.wait(timeout=10)
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, errors
        assert aggregator.wait(10)
        final = aggregator.coordinator.latest
        assert final is not None and final.round == 2
        assert set(final.sample_counts) == {"good-a", "good-b"}
        # Each round moves the model by (10 * 1 + 30 * 3) / 40 = 2.5; the dead push counts nil.
        np.testing.assert_allclose(final.tensors[0], np.full((512, 512), 5.0))
        assert results["good-a"].rounds_trained == [1, 2]
    finally:
        aggregator.stop(grace=0)


def _start_aggregator(env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    with log.open("a") as stream:
        return subprocess.Popen(
            [sys.executable, "-c", AGGREGATOR], env=env, stderr=stream, text=True
        )


def _checkpoint_round(directory: Path) -> int:
    try:
        return int(json.loads((directory / "checkpoint.json").read_text())["round"])
    except (FileNotFoundError, ValueError, KeyError):
        return 0


def test_killed_aggregator_resumes_from_its_checkpoint(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    port = _free_port()
    checkpoints = tmp_path / "checkpoints"
    model_path = tmp_path / "model" / "global.npz"
    env = {
        **os.environ,
        "JOB_NAME": JOB,
        "SEDNA_JOB_TOKEN": TOKEN,
        "AGG_BIND_PORT": str(port),
        "agg_bind_host": "127.0.0.1",
        "PARTICIPANTS_COUNT": "2",
        "exit_round": "6",
        "round_timeout_seconds": "60",
        "exit_grace_seconds": "10",
        "checkpoint_dir": str(checkpoints),
        "MODEL_URL": str(model_path),
        "LC_SERVER": "",
    }
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = _start_aggregator(env, first_log)
    processes.append(first)

    def trainer(name: str, step: float) -> FederatedLearning:
        settings = TrainerSettings(
            job=JOB, token=TOKEN, worker=name, agg_port=port, retry_seconds=60
        )
        return FederatedLearning(SlowStepEstimator(step, (64, 8), seconds=0.15), settings=settings)

    results, errors, threads = _train_in_threads(
        {"edge-a": (trainer("edge-a", 1.0), 10), "edge-b": (trainer("edge-b", 2.0), 30)}
    )
    deadline = time.monotonic() + 60
    while _checkpoint_round(checkpoints) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    killed_at = _checkpoint_round(checkpoints)
    assert 2 <= killed_at < 6
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)

    second = _start_aggregator(env, second_log)
    processes.append(second)
    for thread in threads:
        thread.join(timeout=90)
    assert not errors, errors
    assert second.wait(timeout=30) == 0

    resumed = [
        json.loads(line)
        for line in second_log.read_text().splitlines()
        if line.startswith("{") and "resuming from checkpoint" in line
    ]
    assert len(resumed) == 1
    resumed_round = int(resumed[0]["message"].rsplit(" ", 1)[1])
    assert killed_at <= resumed_round < 6
    assert _checkpoint_round(checkpoints) == 6
    # Every round had both updates: 6 rounds of (10 * 1 + 30 * 2) / 40 = 1.75.
    final = dict(load_npz(checkpoints / "global_round_00006.npz"))
    np.testing.assert_allclose(final["layer_0000"], np.full((64, 8), 6 * 1.75), rtol=1e-5)
    assert all(summary.final_round == 6 for summary in results.values())
