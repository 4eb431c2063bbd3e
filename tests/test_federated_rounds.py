"""Rounds end to end in one process: trainers, late and slow workers, FedProx, the round
policy, checkpoints and settings."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sedna.algorithms.aggregation import (
    AggregationError,
    ClientUpdate,
    FedAvg,
    FedProx,
    ProximalTerm,
)
from sedna.common.errors import ConfigError
from sedna.core.federated_learning import (
    AggregationServer,
    AggregatorSettings,
    CheckpointStore,
    FederatedLearning,
    JobFailed,
    RoundAction,
    RoundPolicy,
    TrainerSettings,
    TrainingSummary,
    load_npz,
    save_npz,
)
from sedna.core.federated_learning.checkpoint import CheckpointError, CheckpointRecord
from tests.federated_support import loopback_settings

TOKEN = "rounds-token"
JOB = "rounds-test"


class StepEstimator:
    """Adds ``step`` to every weight per local training; records what training was given."""

    def __init__(self, step: float, before_train: Callable[[int], None] | None = None) -> None:
        self.step = step
        self.weights = [np.zeros((3, 2), np.float32), np.zeros(2, np.float32)]
        self.calls: list[dict[str, Any]] = []
        self.before_train = before_train

    def get_weights(self) -> list[np.ndarray]:
        return [w.copy() for w in self.weights]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self.weights = [np.array(w) for w in weights]

    def train(self, train_data: Any, valid_data: Any = None, **kwargs: Any) -> dict[str, float]:
        if self.before_train is not None:
            self.before_train(len(self.calls))
        self.calls.append({"start": self.get_weights(), **kwargs})
        self.weights = [w + self.step for w in self.weights]
        return {"loss": 1.0 / len(self.calls)}


def _aggregator(**overrides: Any) -> AggregationServer:
    aggregation = overrides.pop("aggregation", None)
    settings = loopback_settings(JOB, TOKEN, **{"exit_grace_seconds": 5, **overrides})
    return AggregationServer(aggregation, settings=settings).serve()


@pytest.fixture
def aggregators() -> Iterator[list[AggregationServer]]:
    started: list[AggregationServer] = []
    yield started
    for aggregator in started:
        aggregator.stop(grace=0)


def _trainer(
    aggregator: AggregationServer, worker: str, estimator: StepEstimator, **options: Any
) -> FederatedLearning:
    aggregation = options.pop("aggregation", "FedAvg")
    settings = TrainerSettings(
        job=JOB, token=TOKEN, worker=worker, agg_port=aggregator.port, **options
    )
    return FederatedLearning(estimator, aggregation, settings=settings)


def _run_all(jobs: dict[str, tuple[FederatedLearning, int]]) -> dict[str, TrainingSummary]:
    results: dict[str, TrainingSummary] = {}
    errors: list[BaseException] = []

    def run(name: str, trainer: FederatedLearning, samples: int) -> None:
        try:
            results[name] = trainer.train(list(range(samples)))
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [
        threading.Thread(target=run, args=(name, trainer, samples))
        for name, (trainer, samples) in jobs.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results


@pytest.mark.parametrize("compression", ["none", "fp16", "int8"])
def test_job_runs_all_rounds_and_averages_by_samples(
    aggregators: list[AggregationServer], compression: str
) -> None:
    aggregator = _aggregator()
    aggregators.append(aggregator)
    summaries = _run_all(
        {
            "a": (_trainer(aggregator, "a", StepEstimator(1.0), compression=compression), 10),
            "b": (_trainer(aggregator, "b", StepEstimator(2.0), compression=compression), 30),
        }
    )
    assert aggregator.wait(30)
    final = aggregator.coordinator.latest
    assert final is not None and final.round == 3
    # Each round moves the model by (10 * 1 + 30 * 2) / 40 = 1.75.
    for tensor in final.tensors:
        np.testing.assert_allclose(tensor, 3 * 1.75, rtol=1e-3)
    for summary in summaries.values():
        assert summary.rounds_trained == [1, 2, 3] and summary.final_round == 3
        assert summary.refused_pushes == 0


def test_topk_job_with_error_feedback_converges_to_the_same_model(
    aggregators: list[AggregationServer],
) -> None:
    aggregator = _aggregator(exit_round=6)
    aggregators.append(aggregator)
    options = {"compression": "topk", "topk_ratio": 0.5}
    summaries = _run_all(
        {
            "a": (_trainer(aggregator, "a", StepEstimator(1.0), **options), 10),
            "b": (_trainer(aggregator, "b", StepEstimator(1.0), **options), 10),
        }
    )
    final = aggregator.coordinator.latest
    assert final is not None
    # Half the entries travel per round; what is left behind is sent later, so after six
    # rounds of +1 every entry has arrived at least five times.
    for tensor in final.tensors:
        assert np.all(tensor >= 5.0) and np.all(tensor <= 6.0)
    assert all(summary.bytes_pushed > 0 for summary in summaries.values())


def test_fedprox_hands_the_proximal_term_to_the_estimator(
    aggregators: list[AggregationServer],
) -> None:
    aggregator = _aggregator(participants=1, exit_round=2, aggregation="FedProx")
    aggregators.append(aggregator)
    estimator = StepEstimator(1.0)
    _run_all({"a": (_trainer(aggregator, "a", estimator, aggregation=FedProx(mu=0.25)), 5)})
    assert len(estimator.calls) == 2
    for call in estimator.calls:
        term = call["proximal"]
        assert isinstance(term, ProximalTerm) and term.mu == 0.25
        for start, global_tensor in zip(call["start"], term.global_weights, strict=True):
            np.testing.assert_array_equal(start, global_tensor)
    # The second round starts from the first round's global model (+1).
    np.testing.assert_allclose(estimator.calls[1]["start"][0], 1.0)


def test_late_worker_joins_at_the_current_round(aggregators: list[AggregationServer]) -> None:
    aggregator = _aggregator(min_node_number=1, round_timeout_seconds=0.3, exit_round=4)
    aggregators.append(aggregator)
    first_done = threading.Event()

    def wait_for_round_one(call: int) -> None:
        if call == 0:
            while aggregator.status().latest_round < 1:
                time.sleep(0.02)
            first_done.set()

    late = StepEstimator(1.0, before_train=wait_for_round_one)
    summaries = _run_all(
        {
            "fast": (_trainer(aggregator, "fast", StepEstimator(1.0)), 10),
            "late": (_trainer(aggregator, "late", late), 10),
        }
    )
    assert first_done.is_set()
    late_summary = summaries["late"]
    # Its round-1 update came after round 1 closed: refused, then it rejoined.
    assert late_summary.refused_pushes >= 1
    assert 1 not in late_summary.rounds_trained
    assert late_summary.final_round == 4
    assert summaries["fast"].rounds_trained[0] == 1


def test_a_missing_worker_costs_each_round_only_the_wait_after_the_minimum(
    aggregators: list[AggregationServer],
) -> None:
    # Three participants, one never comes: with the one-minute timeout the three rounds would
    # take three minutes; the trainers' 20 s round wait fails the test if they do.
    aggregator = _aggregator(
        participants=3, min_node_number=2, round_wait_after_min_seconds=0.2, exit_round=3
    )
    aggregators.append(aggregator)
    options = {"round_wait_seconds": 20}
    summaries = _run_all(
        {
            "a": (_trainer(aggregator, "a", StepEstimator(1.0), **options), 10),
            "b": (_trainer(aggregator, "b", StepEstimator(3.0), **options), 30),
        }
    )
    assert aggregator.wait(10)
    final = aggregator.coordinator.latest
    assert final is not None and final.round == 3 and set(final.sample_counts) == {"a", "b"}
    for tensor in final.tensors:
        np.testing.assert_allclose(tensor, 3 * 2.5, rtol=1e-5)
    assert summaries["a"].rounds_trained == [1, 2, 3]


def test_round_fails_when_too_few_workers_come(aggregators: list[AggregationServer]) -> None:
    aggregator = _aggregator(
        participants=2, min_node_number=2, round_timeout_seconds=0.2, round_max_wait_seconds=0.5
    )
    aggregators.append(aggregator)
    trainer = _trainer(aggregator, "alone", StepEstimator(1.0))
    with pytest.raises(JobFailed, match=r"only 1 of 2 training workers.*min_node_number"):
        trainer.train(list(range(4)))
    assert aggregator.wait(5)
    assert aggregator.status().failure is not None


class _BrokenRule(FedAvg):
    """Fails to aggregate round 2."""

    def aggregate(self, updates: Sequence[ClientUpdate]) -> list[np.ndarray]:
        if self.round_number == 2:
            raise AggregationError("rule broke on purpose")
        return super().aggregate(updates)


def test_a_failing_aggregation_fails_the_job_and_tells_the_workers(
    aggregators: list[AggregationServer],
) -> None:
    # The last update of a round closes it in its own push: the failure must still fail the
    # job (not just that push) and reach every worker.
    aggregator = _aggregator(aggregation=_BrokenRule(), exit_round=3, exit_grace_seconds=0)
    aggregators.append(aggregator)
    errors: list[BaseException] = []

    def train(worker: str) -> None:
        try:
            _trainer(aggregator, worker, StepEstimator(1.0)).train(list(range(4)))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=train, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert aggregator.wait(10)
    assert "rule broke on purpose" in (aggregator.status().failure or "")
    assert aggregator.status().latest_round == 1
    assert len(errors) == 2 and all(isinstance(error, JobFailed) for error in errors), errors
    assert all("rule broke on purpose" in str(error) for error in errors)


# -- the round policy ------------------------------------------------------------------------


def test_policy_waits_for_all_then_times_out_to_the_minimum() -> None:
    policy = RoundPolicy(participants=3, min_updates=2, timeout_seconds=10, max_wait_seconds=30)
    assert policy.decide(received=3, elapsed=0) is RoundAction.AGGREGATE
    assert policy.decide(received=2, elapsed=9.9) is RoundAction.WAIT
    assert policy.decide(received=2, elapsed=10) is RoundAction.AGGREGATE
    assert policy.decide(received=1, elapsed=10) is RoundAction.WAIT
    assert policy.decide(received=1, elapsed=29) is RoundAction.WAIT
    assert policy.decide(received=2, elapsed=29) is RoundAction.AGGREGATE
    assert policy.decide(received=1, elapsed=30) is RoundAction.FAIL
    assert policy.decide(received=0, elapsed=31) is RoundAction.FAIL


def test_policy_waits_only_so_long_after_the_minimum_is_in() -> None:
    policy = RoundPolicy(
        participants=3,
        min_updates=2,
        timeout_seconds=10,
        max_wait_seconds=30,
        wait_after_min_seconds=1.5,
    )
    # The second update came at 2 s: the third gets until 3.5 s, not the 10 s timeout.
    assert policy.decide(received=2, elapsed=3.4, min_reached=2.0) is RoundAction.WAIT
    assert policy.seconds_until_change(received=2, elapsed=3.0, min_reached=2.0) == 0.5
    assert policy.decide(received=2, elapsed=3.5, min_reached=2.0) is RoundAction.AGGREGATE
    # Never later than the timeout, and below the minimum nothing changes.
    assert policy.decide(received=2, elapsed=10, min_reached=9.5) is RoundAction.AGGREGATE
    assert policy.decide(received=1, elapsed=9, min_reached=None) is RoundAction.WAIT
    assert policy.decide(received=3, elapsed=0.1, min_reached=0.1) is RoundAction.AGGREGATE


def test_policy_tells_how_long_nothing_changes() -> None:
    policy = RoundPolicy(participants=3, min_updates=2, timeout_seconds=10, max_wait_seconds=30)
    assert policy.seconds_until_change(received=2, elapsed=4) == 6
    assert policy.seconds_until_change(received=1, elapsed=4) == 26
    assert policy.seconds_until_change(received=3, elapsed=4) == 0


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"participants": 0}, "participants_count must be at least 1"),
        ({"min_updates": 4}, "min_node_number must be between 1 and participants_count"),
        ({"timeout_seconds": 0}, "round_timeout_seconds must be positive"),
        ({"max_wait_seconds": 5}, "must not be below round_timeout_seconds"),
        ({"wait_after_min_seconds": -1}, "round_wait_after_min_seconds must not be negative"),
    ],
)
def test_policy_refuses_inconsistent_settings(values: dict[str, Any], message: str) -> None:
    arguments = {"participants": 3, "min_updates": 2, "timeout_seconds": 10, "max_wait_seconds": 30}
    arguments.update(values)
    with pytest.raises(ConfigError, match=message):
        RoundPolicy(**arguments)


# -- checkpoints -----------------------------------------------------------------------------


def _record(round_number: int) -> CheckpointRecord:
    return CheckpointRecord(
        job=JOB,
        round=round_number,
        exit_round=9,
        model_file="",
        state_file="",
        participants=2,
        total_samples=40,
        sample_counts={"a": 10, "b": 30},
        updated="2026-01-01T00:00:00.000Z",
    )


def test_checkpoint_round_trip_keeps_the_latest_rounds(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, keep_models=2)
    for round_number in range(1, 5):
        tensors = [("file", np.full(3, round_number, np.float32)), ("layer/0", np.eye(2))]
        store.save(_record(round_number), tensors, {"velocity_0": np.ones(3) * round_number})
    loaded = store.load()
    assert loaded is not None
    record, tensors, state = loaded
    assert record.round == 4 and record.sample_counts == {"a": 10, "b": 30}
    assert [name for name, _ in tensors] == ["file", "layer/0"]
    np.testing.assert_array_equal(tensors[0][1], np.full(3, 4, np.float32))
    np.testing.assert_array_equal(state["velocity_0"], np.ones(3) * 4)
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == [
        "checkpoint.json",
        "global_round_00003.npz",
        "global_round_00004.npz",
        "state_round_00004.npz",
    ]
    # The model files are plain npz.
    with np.load(tmp_path / "global_round_00004.npz") as archive:
        np.testing.assert_array_equal(archive["layer/0"], np.eye(2))


def test_checkpoints_keep_every_rounds_model_by_default(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    for round_number in range(1, 4):
        store.save(_record(round_number), [("w", np.zeros(2))], {})
    models = sorted(path.name for path in tmp_path.glob("global_round_*.npz"))
    assert models == [f"global_round_0000{r}.npz" for r in (1, 2, 3)]
    assert [path.name for path in tmp_path.glob("state_round_*.npz")] == ["state_round_00003.npz"]


def test_corrupt_checkpoint_is_reported(tmp_path: Path) -> None:
    (tmp_path / "checkpoint.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt checkpoint"):
        CheckpointStore(tmp_path).load()
    with pytest.raises(CheckpointError, match="cannot read model file"):
        load_npz(tmp_path / "missing.npz")


def test_aggregator_writes_checkpoints_not_the_model_file(
    aggregators: list[AggregationServer], tmp_path: Path
) -> None:
    model_path = tmp_path / "out" / "model.npz"
    aggregator = _aggregator(
        participants=1, exit_round=2, checkpoint_dir=tmp_path / "ckpt", model_path=model_path
    )
    aggregators.append(aggregator)
    _run_all({"a": (_trainer(aggregator, "a", StepEstimator(0.5)), 3)})
    assert aggregator.wait(10)
    store = CheckpointStore(tmp_path / "ckpt")
    loaded = store.load()
    assert loaded is not None and loaded[0].round == 2
    final = dict(load_npz(store.model_path(2)))
    np.testing.assert_allclose(final["layer_0000"], np.full((3, 2), 1.0))
    # MODEL_URL is the training workers' to write, with their estimator's own save.
    assert not model_path.exists()


def test_the_first_round_starts_from_the_pretrained_model(
    aggregators: list[AggregationServer], tmp_path: Path
) -> None:
    pretrained = tmp_path / "base" / "global_model.npz"
    save_npz(pretrained, [("w", np.full((3, 2), 10.0, np.float32)), ("b", np.ones(2, np.float32))])
    aggregator = _aggregator(participants=1, exit_round=2, initial_model_path=pretrained)
    aggregators.append(aggregator)
    estimator = StepEstimator(0.5)
    _run_all({"a": (_trainer(aggregator, "a", estimator), 3)})
    assert aggregator.wait(10)
    np.testing.assert_allclose(estimator.calls[0]["start"][0], np.full((3, 2), 10.0))
    final = aggregator.coordinator.latest
    assert final is not None and final.names == ("w", "b")
    np.testing.assert_allclose(final.tensors[0], np.full((3, 2), 11.0))
    np.testing.assert_allclose(final.tensors[1], np.full(2, 2.0))


def test_a_missing_pretrained_model_is_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"cannot read model file .*absent\.npz"):
        _aggregator(initial_model_path=tmp_path / "absent.npz")


# -- settings --------------------------------------------------------------------------------


def test_settings_come_from_the_worker_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOB_NAME", "env-job")
    monkeypatch.setenv("SEDNA_JOB_TOKEN", "tok")
    monkeypatch.setenv("AGG_BIND_PORT", "7363")
    monkeypatch.setenv("PARTICIPANTS_COUNT", "3")
    monkeypatch.setenv("exit_round", "7")
    monkeypatch.setenv("MIN_NODE_NUMBER", "2")
    monkeypatch.setenv("MODEL_URL", "/models/fl")
    monkeypatch.setenv("round_wait_after_min_seconds", "2.5")
    monkeypatch.setenv("BASE_MODEL_URL", "/models/base")
    settings = AggregatorSettings.from_env()
    assert settings.round_wait_after_min_seconds == 2.5
    assert settings.initial_model_path == Path("/models/base/global_model.npz")
    assert (settings.job, settings.bind_port, settings.participants) == ("env-job", 7363, 3)
    assert (settings.exit_round, settings.min_node_number) == (7, 2)
    assert settings.model_path == Path("/models/fl/global_model.npz")
    assert settings.checkpoint_dir == Path("/models/fl/checkpoints")

    monkeypatch.setenv("AGG_IP", "10.0.0.5")
    monkeypatch.setenv("AGG_PORT", "7363")
    monkeypatch.setenv("WORKER_NAME", "edge-0")
    monkeypatch.setenv("compression", "topk")
    monkeypatch.setenv("topk_ratio", "0.05")
    trainer = TrainerSettings.from_env()
    assert trainer.address == "10.0.0.5:7363" and trainer.worker == "edge-0"
    assert (trainer.compression, trainer.topk_ratio) == ("topk", 0.05)


def test_missing_settings_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SEDNA_JOB_TOKEN", "AGG_BIND_PORT", "AGG_PORT", "PARTICIPANTS_COUNT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match=r"token \(SEDNA_JOB_TOKEN\): Field required"):
        AggregatorSettings.from_env()
    monkeypatch.setenv("SEDNA_JOB_TOKEN", "tok")
    monkeypatch.setenv("AGG_BIND_PORT", "7363")
    monkeypatch.setenv("PARTICIPANTS_COUNT", "2")
    monkeypatch.setenv("min_node_number", "3")
    with pytest.raises(ConfigError, match=r"min_node_number \(3\) exceeds participants_count"):
        AggregatorSettings.from_env()


def test_unknown_compression_is_a_config_error() -> None:
    settings = TrainerSettings(job=JOB, token=TOKEN, worker="w", agg_port=1, compression="zip")
    with pytest.raises(ConfigError, match="compression: unknown compression algorithm 'zip'"):
        FederatedLearning(StepEstimator(1.0), settings=settings)


# -- reports to the LC -----------------------------------------------------------------------


class _LCStandIn:
    """A real HTTP server on loopback that records the worker reports it receives."""

    def __init__(self) -> None:
        import http.server
        import json

        reports: list[tuple[str, dict[str, Any]]] = []
        self.reports = reports

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                reports.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_aggregator_reports_rounds_and_nodes_to_its_lc(
    aggregators: list[AggregationServer], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    lc = _LCStandIn()
    try:
        monkeypatch.setenv("LC_SERVER", lc.url)
        monkeypatch.setenv("WORKER_NAME", "fl-aggregator")
        monkeypatch.setenv("JOB_NAME", JOB)
        model_path = tmp_path / "final.npz"
        aggregator = _aggregator(exit_round=2, model_path=model_path)
        aggregators.append(aggregator)
        monkeypatch.setenv("WORKER_NAME", "fl-trainer")
        monkeypatch.setenv("NODE_NAME", "edge-x")
        _run_all(
            {
                "a": (_trainer(aggregator, "a", StepEstimator(1.0)), 10),
                "b": (_trainer(aggregator, "b", StepEstimator(1.0), node="edge-b"), 30),
            }
        )
        assert aggregator.wait(10)
        aggregator.stop(grace=0)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
            body.get("status") == "completed" and path.endswith("/fl-aggregator/info")
            for path, body in lc.reports
        ):
            time.sleep(0.05)
    finally:
        lc.close()
    mine = [body for path, body in lc.reports if path == "/sedna/workers/fl-aggregator/info"]
    running = [body for body in mine if body["status"] == "running"]
    assert running, lc.reports
    last = running[-1]["taskInfo"]
    assert last["currentRound"] in (1, 2) and "updateTime" in last
    assert {node["nodeName"] for node in last["nodes"]} == {"a", "edge-b"}
    assert last["sampleCounts"] == {"a": 10, "edge-b": 30}
    completed = [body for body in mine if body["status"] == "completed"][-1]
    assert completed["ownerName"] == JOB and completed["kind"] == "aggregation"
    assert completed["taskInfo"]["currentRound"] == 2
    # Only the totals: the GM keeps the last round's nodes (its records merge key by key).
    assert "nodes" not in completed["taskInfo"]
    # The model file is the training workers' to write and report.
    assert "models" not in completed and not model_path.exists()


def test_unreachable_aggregator_is_reported_after_the_retry_budget() -> None:
    import socket

    from sedna.core.federated_learning import AggregatorUnavailable

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = TrainerSettings(job=JOB, token=TOKEN, worker="w", agg_port=port, retry_seconds=0.5)
    trainer = FederatedLearning(StepEstimator(1.0), settings=settings)
    with pytest.raises(AggregatorUnavailable, match=rf"127\.0\.0\.1:{port} unreachable for pull"):
        trainer.train(list(range(3)))
