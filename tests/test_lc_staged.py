"""The node side of staged jobs (lc.staged) on real files, with a fake clock: the dataset side
cuts rounds only when the trigger holds, at its period, once per round across restarts; the
deploy side replaces the model file or writes the hot-update config, once per round."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from apis.stages import (
    STAGED_ANNOTATION,
    DeployAction,
    Stage,
    StagedDirective,
    StageMessage,
    StageState,
)
from lc.staged import StagedJobs
from tests.clock import FakeClock

S, W = Stage, StageState


@dataclass
class Outbox:
    sent: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, kind: str, namespace: str, name: str, payload: dict[str, Any]) -> None:
        self.sent.append((kind, namespace, name, payload))

    def messages(self) -> list[StageMessage]:
        return [StageMessage.model_validate(p) for _, _, _, p in self.sent]


TRIGGER = {
    "checkPeriodSeconds": 30,
    "timer": {"start": "02:00", "end": "20:00"},
    "condition": {"operator": ">", "threshold": 200, "metric": "num_of_samples"},
}


def job(
    tmp_path: Path, directive: StagedDirective, trigger: dict[str, Any] = TRIGGER
) -> dict[str, Any]:
    return {
        "kind": "IncrementalLearningJob",
        "metadata": {
            "name": "il",
            "namespace": "default",
            "annotations": {STAGED_ANNOTATION: directive.model_dump_json(by_alias=True)},
        },
        "spec": {
            "dataset": {"name": "ds", "trainProb": 0.8},
            "trainSpec": {"trigger": trigger},
            "outputDir": str(tmp_path / "out"),
        },
    }


def resources(tmp_path: Path, directive: StagedDirective, **kw: Any) -> dict[str, Any]:
    dataset = {
        "kind": "Dataset",
        "metadata": {"name": "ds", "namespace": "default"},
        "spec": {"url": str(tmp_path / "index.txt"), "format": "txt", "nodeName": "edge0"},
    }
    return {
        "IncrementalLearningJob/default/il": job(tmp_path, directive, **kw),
        "Dataset/default/ds": dataset,
    }


def waiting(round_: int) -> StagedDirective:
    return StagedDirective(round=round_, stage=S.TRAIN, state=W.WAITING)


def append(tmp_path: Path, count: int, start: int = 0) -> None:
    with (tmp_path / "index.txt").open("a") as fh:
        fh.write("".join(f"s/{i}.txt {i % 10}\n" for i in range(start, start + count)))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(seconds=100.0)


def node(tmp_path: Path, clock: FakeClock, outbox: Outbox) -> StagedJobs:
    (tmp_path / "index.txt").touch()
    return StagedJobs("edge0", tmp_path / "lc", outbox, clock)


def test_no_training_before_the_condition_holds(tmp_path: Path, clock: FakeClock) -> None:
    outbox = Outbox()
    lc = node(tmp_path, clock, outbox)
    lc.update(resources(tmp_path, waiting(0)))
    append(tmp_path, 250)  # 200 train samples: not > 200
    for _ in range(4):
        lc.tick()
        clock.advance(30)
    assert outbox.sent == []
    append(tmp_path, 5, start=250)  # 204 train samples
    lc.tick()
    (message,) = outbox.messages()
    assert (message.stage, message.state, message.round) == (S.TRAIN, W.READY, 1)
    assert message.data.train == 204 and message.data.eval == 51
    train = Path(message.data.train_url).read_text().splitlines()
    assert len(train) == 204 and train[0] == f"{tmp_path}/s/0.txt 0"


def test_no_training_outside_the_timer_window(tmp_path: Path) -> None:
    clock = FakeClock(seconds=100.0, wall=datetime(2024, 5, 1, 20, 0))
    outbox = Outbox()
    lc = node(tmp_path, clock, outbox)
    lc.update(resources(tmp_path, waiting(0)))
    append(tmp_path, 1000)
    for _ in range(10):  # 20:00 to 20:05
        lc.tick()
        clock.advance(30)
    assert outbox.sent == []
    clock.wall = datetime(2024, 5, 2, 2, 0)
    lc.tick()
    assert [m.round for m in outbox.messages()] == [1]


def test_the_check_period_is_honoured(tmp_path: Path, clock: FakeClock) -> None:
    outbox = Outbox()
    lc = node(tmp_path, clock, outbox)
    lc.update(resources(tmp_path, waiting(0)))
    lc.tick()  # checked at once: nothing yet
    append(tmp_path, 300)
    clock.advance(29)
    lc.tick()
    assert outbox.sent == [] and lc.seconds_until_due() == pytest.approx(1)
    clock.advance(1)
    lc.tick()
    assert len(outbox.sent) == 1


def test_only_while_train_is_waiting_and_samples_of_a_round_wait_for_the_next(
    tmp_path: Path, clock: FakeClock
) -> None:
    outbox = Outbox()
    lc = node(tmp_path, clock, outbox)
    running = StagedDirective(round=1, stage=S.EVAL, state=W.RUNNING)
    lc.update(resources(tmp_path, running))
    append(tmp_path, 1000)
    lc.tick()
    assert outbox.sent == []  # a round is in progress
    lc.update(resources(tmp_path, waiting(1)))
    lc.tick()
    assert [m.round for m in outbox.messages()] == [2]  # read during round 1, trained in round 2


def test_a_trickle_of_one_sample_at_a_time_reaches_training(
    tmp_path: Path, clock: FakeClock
) -> None:
    outbox = Outbox()
    lc = node(tmp_path, clock, outbox)
    lc.update(resources(tmp_path, waiting(0)))
    for i in range(400):
        append(tmp_path, 1, start=i)
        lc.tick()
        clock.advance(1)
        if outbox.sent:
            break
    (message,) = outbox.messages()  # upstream: int(0.8 * 1) == 0, all of them go to eval
    assert 201 <= message.data.train <= 201 + 30 and message.data.eval == i + 1 - message.data.train


def test_a_restarted_lc_resends_the_cut_and_never_cuts_it_again(
    tmp_path: Path, clock: FakeClock
) -> None:
    outbox = Outbox()
    lc = node(tmp_path, clock, outbox)
    lc.update(resources(tmp_path, waiting(0)))
    append(tmp_path, 300)
    lc.tick()
    first = outbox.messages()[0]
    # the LC dies before the GM moved on; a new one starts on the same data directory
    again = Outbox()
    restarted = StagedJobs("edge0", tmp_path / "lc", again, clock)
    restarted.update(resources(tmp_path, waiting(0)))
    append(tmp_path, 300, start=300)
    restarted.tick()
    assert [m.data for m in again.messages()] == [first.data]  # round 1 again, not a new cut
    clock.advance(5)
    restarted.tick()
    assert len(again.sent) == 1  # re-sent at most every RESEND_SECONDS
    restarted.update(resources(tmp_path, waiting(1)))
    clock.advance(30)
    restarted.tick()
    second = again.messages()[-1]
    assert second.round == 2 and second.data.train == 240  # the new batch only


def test_another_nodes_dataset_is_not_read(tmp_path: Path, clock: FakeClock) -> None:
    outbox = Outbox()
    lc = StagedJobs("edge1", tmp_path / "lc", outbox, clock)
    (tmp_path / "index.txt").touch()
    lc.update(resources(tmp_path, waiting(0)))
    append(tmp_path, 1000)
    lc.tick()
    assert outbox.sent == [] and lc.jobs() == ["IncrementalLearningJob/default/il"]


def deploying(tmp_path: Path, hot: bool, round_: int = 1) -> StagedDirective:
    model = tmp_path / f"out/train/{round_}/model.pkl"
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_bytes(f"model of round {round_}".encode())
    action = DeployAction(
        round=round_,
        model_url=str(model),
        target_url=str(tmp_path / "deploy.pkl"),
        hot_update_config=str(tmp_path / "hot" / "model_config.json") if hot else None,
    )
    return StagedDirective(
        round=round_, stage=S.DEPLOY, state=W.STARTING, deploy=action, deploy_node="edge0"
    )


def test_cold_deploy_replaces_the_model_file_once(tmp_path: Path, clock: FakeClock) -> None:
    outbox = Outbox()
    lc = node(tmp_path, clock, outbox)
    (tmp_path / "deploy.pkl").write_bytes(b"old")
    lc.update(resources(tmp_path, deploying(tmp_path, hot=False)))
    lc.tick()
    assert (tmp_path / "deploy.pkl").read_bytes() == b"model of round 1"
    (message,) = outbox.messages()
    assert (message.stage, message.state, message.round) == (S.DEPLOY, W.RUNNING, 1)
    (tmp_path / "deploy.pkl").write_bytes(b"touched")
    clock.advance(RESEND := 11)
    lc.tick()
    assert (tmp_path / "deploy.pkl").read_bytes() == b"touched"  # not deployed twice
    assert len(outbox.sent) == 2 and RESEND


def test_hot_deploy_writes_the_config_and_mirrors_the_served_model(
    tmp_path: Path, clock: FakeClock
) -> None:
    outbox = Outbox()
    lc = node(tmp_path, clock, outbox)
    (tmp_path / "deploy.pkl").write_bytes(b"old")
    directive = deploying(tmp_path, hot=True)
    lc.update(resources(tmp_path, directive))
    lc.tick()
    config = json.loads((tmp_path / "hot" / "model_config.json").read_text())
    assert config["model_config"]["model_path"] == directive.deploy.model_url
    assert (tmp_path / "deploy.pkl").read_bytes() == b"old"  # not before the worker loaded it
    served = StagedDirective(
        round=1,
        stage=S.TRAIN,
        state=W.WAITING,
        deploy_node="edge0",
        served_model_url=directive.deploy.model_url,
        target_url=str(tmp_path / "deploy.pkl"),
    )
    lc.update(resources(tmp_path, served))
    lc.tick()
    assert (tmp_path / "deploy.pkl").read_bytes() == b"model of round 1"


def test_a_missing_trained_model_fails_the_deploy_with_the_reason(
    tmp_path: Path, clock: FakeClock
) -> None:
    outbox = Outbox()
    lc = node(tmp_path, clock, outbox)
    directive = deploying(tmp_path, hot=False)
    Path(directive.deploy.model_url).unlink()
    lc.update(resources(tmp_path, directive))
    lc.tick()
    (message,) = outbox.messages()
    assert message.state is W.FAILED and "does not exist" in message.message


def test_the_inference_workers_reload_report_becomes_the_deploy_outcome(
    tmp_path: Path, clock: FakeClock
) -> None:
    outbox = Outbox()
    lc = node(tmp_path, clock, outbox)
    assert not lc.on_deploy_report("default", "il", "completed", ["/m.pkl"], None)  # unknown job
    lc.update(resources(tmp_path, waiting(1)))
    assert not lc.on_deploy_report("default", "il", "completed", ["/m.pkl"], None)  # not deploying
    running = StagedDirective(round=2, stage=S.DEPLOY, state=W.RUNNING)
    lc.update(resources(tmp_path, running))
    assert lc.on_deploy_report("default", "il", "failed", ["/m.pkl"], "UnpicklingError: x")
    assert lc.on_deploy_report("default", "il", "completed", ["/m.pkl"], None)
    failed, loaded = outbox.messages()
    assert (failed.state, failed.round, failed.message) == (W.FAILED, 2, "UnpicklingError: x")
    assert (loaded.state, loaded.models[0].url) == (W.COMPLETED, "/m.pkl")


def test_only_the_deploy_node_deploys(tmp_path: Path, clock: FakeClock) -> None:
    outbox = Outbox()
    lc = StagedJobs("edge1", tmp_path / "lc", outbox, clock)
    (tmp_path / "deploy.pkl").write_bytes(b"old")
    lc.update(resources(tmp_path, deploying(tmp_path, hot=False)))  # deploy node: edge0
    lc.tick()
    assert outbox.sent == [] and (tmp_path / "deploy.pkl").read_bytes() == b"old"


def test_one_jobs_broken_dataset_does_not_stop_another_job(
    tmp_path: Path, clock: FakeClock
) -> None:
    outbox = Outbox()
    lc = node(tmp_path, clock, outbox)
    good = resources(tmp_path, waiting(0))
    broken = job(tmp_path / "other", waiting(0))
    broken["metadata"]["name"] = "broken"
    broken["spec"]["dataset"]["name"] = "gone"
    gone = {
        "kind": "Dataset",
        "metadata": {"name": "gone", "namespace": "default"},
        "spec": {"url": str(tmp_path / "missing.txt"), "format": "txt", "nodeName": "edge0"},
    }
    lc.update(
        {**good, "IncrementalLearningJob/default/broken": broken, "Dataset/default/gone": gone}
    )
    append(tmp_path, 300)
    lc.tick()
    assert [(name, m["round"]) for _, _, name, m in outbox.sent] == [("il", 1)]
