"""The staged engine (gm.staged), transition by transition, with a small policy of its own."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from apis.kinds import StagedJobStatus
from apis.stages import (
    DeployDecision,
    RoundData,
    Stage,
    StageInput,
    StageMessage,
    StageModel,
    StageOutput,
    StageState,
)
from gm.staged import (
    MAX_STAGED_CONDITIONS,
    WorkerPhase,
    WorkerResult,
    active_stage,
    advance,
    worker_name,
    worker_stage,
)

S, W = Stage, StageState
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TRAINED = StageModel(format="pkl", url="/out/train/1/model.pkl")


@dataclass
class Policy:
    """Deploys when the first model's precision beats the second's; hot or cold."""

    hot: bool = True

    def train_input(self, status: StagedJobStatus, data: RoundData) -> StageInput:
        base = status.trained_model or StageModel(url="/models/initial.pkl")
        return StageInput(
            models=[base], data_url=data.train_url, output_dir=f"/out/train/{status.round}"
        )

    def eval_input(self, status: StagedJobStatus) -> StageInput:
        models = [status.trained_model, StageModel(url="/models/deploy.pkl")]
        return StageInput(models=[m for m in models if m], data_url=status.round_data.eval_url)

    def output_problem(self, stage: Stage, models: Sequence[StageModel]) -> str | None:
        if not models:
            return "no model"
        if stage is S.EVAL and len(models) != 2:
            return f"{len(models)} models; expected 2"
        return None

    def decide_deploy(
        self, status: StagedJobStatus, output: StageOutput, now: datetime
    ) -> DeployDecision:
        new, old = (m.metrics["precision"] for m in output.models)
        return DeployDecision(round=status.round, deploy=new > old, reason=f"{new} vs {old}")

    def deploy_on_report(self) -> bool:
        return self.hot


def states(status: StagedJobStatus) -> list[tuple[str, str]]:
    return [(c.stage.value, c.type) for c in status.conditions or []]


def cut(round_: int, train: int = 240) -> StageMessage:
    data = RoundData(
        train=train,
        eval=60,
        train_url=f"/out/data/train/{round_}/data.txt",
        eval_url=f"/out/data/eval/{round_}/data.txt",
    )
    return StageMessage(stage=S.TRAIN, state=W.READY, round=round_, data=data)


def trained(round_: int) -> WorkerResult:
    model = StageModel(format="pkl", url=f"/out/train/{round_}/model.pkl")
    return WorkerResult(stage=S.TRAIN, round=round_, status="completed", models=[model])


def evaluated(round_: int, new: float, old: float) -> WorkerResult:
    models = [
        StageModel(url=f"/out/train/{round_}/model.pkl", metrics={"precision": new}),
        StageModel(url="/models/deploy.pkl", metrics={"precision": old}),
    ]
    return WorkerResult(stage=S.EVAL, round=round_, status="completed", models=models)


def step(status: StagedJobStatus, *events: object, hot: bool = True) -> StagedJobStatus:
    return advance(status, list(events), Policy(hot=hot), NOW)  # type: ignore[arg-type]


def new_job() -> StagedJobStatus:
    return step(StagedJobStatus())


def test_a_new_job_waits_for_the_train_trigger() -> None:
    status = new_job()
    assert (status.stage, status.state, status.round) == (S.TRAIN, W.WAITING, 0)
    assert states(status) == [("Train", "Waiting")]
    assert status.start_time is not None
    assert step(status).conditions == status.conditions  # nothing happens by itself


def test_the_cut_makes_train_ready_and_the_worker_starting() -> None:
    status = step(new_job(), cut(1))
    assert status.round == 1 and status.round_data.train == 240
    assert states(status)[1:] == [("Train", "Ready"), ("Train", "Starting")]
    ready = status.conditions[1].stage_data()
    assert ready.input.data_url == "/out/data/train/1/data.txt"
    assert ready.input.models[0].url == "/models/initial.pkl"
    assert status.conditions[1].round == 1
    assert active_stage(status) == (S.TRAIN, 1)


def test_a_cut_of_another_round_is_ignored() -> None:
    waiting = new_job()
    assert step(waiting, cut(2)).round == 0  # not the next round
    running = step(waiting, cut(1))
    again = step(running, cut(1))  # re-sent after an LC restart
    assert again.conditions == running.conditions


def test_worker_running_then_completed_with_its_model() -> None:
    status = step(new_job(), cut(1), WorkerPhase(stage=S.TRAIN, round=1, phase="Running"))
    assert (status.stage, status.state) == (S.TRAIN, W.RUNNING)
    status = step(status, trained(1))
    assert status.trained_model.url == "/out/train/1/model.pkl"
    completed = next(c for c in status.conditions if c.type == "Completed")
    assert completed.stage_data().output.models[0].url == "/out/train/1/model.pkl"
    # Train Completed goes on to Eval at once: the eval data was cut with the round
    assert states(status)[-4:] == [
        ("Train", "Completed"),
        ("Eval", "Waiting"),
        ("Eval", "Ready"),
        ("Eval", "Starting"),
    ]
    eval_input = status.conditions[-2].stage_data().input
    assert [m.url for m in eval_input.models] == ["/out/train/1/model.pkl", "/models/deploy.pkl"]
    assert eval_input.data_url == "/out/data/eval/1/data.txt"
    assert active_stage(status) == (S.EVAL, 1)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (WorkerPhase(stage=S.TRAIN, round=1, phase="Failed", exit_code=3), "failed (exit code 3)"),
        (
            WorkerPhase(stage=S.TRAIN, round=1, phase="Succeeded"),
            "exited without reporting a model",
        ),
        (WorkerResult(stage=S.TRAIN, round=1, status="completed"), "output: no model"),
        (WorkerResult(stage=S.TRAIN, round=1, status="failed", message="OOM"), "failure: OOM"),
    ],
)
def test_a_failed_train_stage_abandons_the_round(event: object, message: str) -> None:
    status = step(new_job(), cut(1), event)
    failed = next(c for c in status.conditions if c.type == "Failed")
    assert failed.stage is S.TRAIN and message in failed.message
    assert (status.stage, status.state, status.round) == (S.TRAIN, W.WAITING, 1)
    assert status.failed_rounds == 1 and status.trained_model is None
    assert active_stage(status) is None
    # the next cut starts round 2, which can succeed
    status = step(status, cut(2), trained(2))
    assert status.trained_model.url == "/out/train/2/model.pkl"


def test_late_events_of_a_finished_stage_are_ignored() -> None:
    status = step(new_job(), cut(1), trained(1))
    late = step(
        status,
        WorkerPhase(stage=S.TRAIN, round=1, phase="Succeeded"),  # exits after its report
        WorkerPhase(stage=S.TRAIN, round=1, phase="Failed"),
        trained(1),
    )
    assert late.conditions == status.conditions


def test_eval_output_must_hold_both_models() -> None:
    status = step(new_job(), cut(1), trained(1))
    bad = WorkerResult(stage=S.EVAL, round=1, status="completed", models=[TRAINED])
    status = step(status, bad)
    failed = next(c for c in status.conditions if c.type == "Failed")
    assert failed.stage is S.EVAL and "expected 2" in failed.message


def test_no_deploy_completes_deploy_and_waits_for_the_next_round() -> None:
    status = step(new_job(), cut(1), trained(1), evaluated(1, 0.80, 0.90))
    assert states(status)[-4:] == [
        ("Eval", "Completed"),
        ("Deploy", "Waiting"),
        ("Deploy", "Completed"),
        ("Train", "Waiting"),
    ]
    assert "no need to deploy: 0.8 vs 0.9" in status.conditions[-2].message
    assert status.last_decision.deploy is False and status.skipped_deploys == 1
    assert status.deployed_model is None


def test_hot_deploy_waits_for_the_inference_worker_to_load_the_model() -> None:
    status = step(new_job(), cut(1), trained(1), evaluated(1, 0.95, 0.75))
    assert states(status)[-3:] == [
        ("Deploy", "Waiting"),
        ("Deploy", "Ready"),
        ("Deploy", "Starting"),
    ]
    assert status.last_decision.deploy and status.deploys == 0
    placed = StageMessage(stage=S.DEPLOY, state=W.RUNNING, round=1)
    status = step(status, placed)
    assert (status.stage, status.state) == (S.DEPLOY, W.RUNNING)
    stale = StageMessage(
        stage=S.DEPLOY, state=W.COMPLETED, round=1, models=[StageModel(url="/out/train/0/m")]
    )
    assert step(status, stale).state is W.RUNNING  # an older reload report
    loaded = StageMessage(stage=S.DEPLOY, state=W.COMPLETED, round=1, models=[trained(1).models[0]])
    status = step(status, loaded)
    assert states(status)[-2:] == [("Deploy", "Completed"), ("Train", "Waiting")]
    assert status.deployed_model.url == "/out/train/1/model.pkl" and status.deploys == 1


def test_hot_deploy_whose_model_fails_to_load_fails_the_stage() -> None:
    status = step(new_job(), cut(1), trained(1), evaluated(1, 0.95, 0.75))
    status = step(status, StageMessage(stage=S.DEPLOY, state=W.RUNNING, round=1))
    broken = StageMessage(stage=S.DEPLOY, state=W.FAILED, round=1, message="bad pickle")
    status = step(status, broken)
    failed = next(c for c in status.conditions if c.type == "Failed")
    assert failed.reason == "ModelLoadFailed" and "bad pickle" in failed.message
    assert status.deployed_model is None and status.deploys == 0
    assert (status.stage, status.state) == (S.TRAIN, W.WAITING)


def test_cold_deploy_completes_when_the_model_is_in_place() -> None:
    status = step(new_job(), cut(1), trained(1), evaluated(1, 0.95, 0.75), hot=False)
    status = step(status, StageMessage(stage=S.DEPLOY, state=W.RUNNING, round=1), hot=False)
    assert states(status)[-2:] == [("Deploy", "Completed"), ("Train", "Waiting")]
    assert status.deployed_model.url == "/out/train/1/model.pkl"


def test_a_reload_reported_before_the_placement_was_seen_completes_deploy() -> None:
    status = step(new_job(), cut(1), trained(1), evaluated(1, 0.95, 0.75))
    loaded = StageMessage(stage=S.DEPLOY, state=W.COMPLETED, round=1, models=trained(1).models)
    status = step(status, loaded)
    assert states(status)[-2:] == [("Deploy", "Completed"), ("Train", "Waiting")]


def test_the_deploy_node_failing_to_place_the_model_fails_deploy() -> None:
    status = step(new_job(), cut(1), trained(1), evaluated(1, 0.95, 0.75))
    gone = StageMessage(stage=S.DEPLOY, state=W.FAILED, round=1, message="no such file")
    status = step(status, gone)
    assert any(c.type == "Failed" and c.message == "no such file" for c in status.conditions)


def test_round_two_trains_from_round_ones_model() -> None:
    status = step(new_job(), cut(1), trained(1), evaluated(1, 0.8, 0.9), cut(2))
    assert status.round == 2
    assert status.stage_data.input.models[0].url == "/out/train/1/model.pkl"


def test_three_rounds_keep_their_state_although_conditions_are_capped() -> None:
    status = new_job()
    for r in range(1, 6):
        status = step(status, cut(r), trained(r), evaluated(r, 0.9 + r / 100, 0.9))
        status = step(status, StageMessage(stage=S.DEPLOY, state=W.RUNNING, round=r))
        loaded = StageMessage(stage=S.DEPLOY, state=W.COMPLETED, round=r, models=trained(r).models)
        status = step(status, loaded)
    assert status.round == 5 and status.deploys == 5
    assert len(status.conditions) == MAX_STAGED_CONDITIONS
    assert status.trained_model.url == "/out/train/5/model.pkl"


def test_the_status_survives_a_round_trip_through_json() -> None:
    status = step(new_job(), cut(1), trained(1))
    again = StagedJobStatus.model_validate(status.to_api())
    assert again.to_api() == status.to_api()
    assert again.conditions[-1].stage_data() == status.conditions[-1].stage_data()


def test_worker_names() -> None:
    assert worker_name("job", S.TRAIN, 3) == "job-train-3"
    assert worker_name("job", S.DEPLOY, 3) == "job-inference"
    assert worker_stage("job", "job-eval-12", 4) == (S.EVAL, 12)
    assert worker_stage("job", "job-inference", 4) == (S.DEPLOY, 4)
    assert worker_stage("job", "job-train-x", 4) is None
    assert worker_stage("job", "other-train-1", 4) is None
