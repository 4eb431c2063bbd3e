"""The staged engine of incremental and lifelong learning: rounds of Train -> Eval -> Deploy.

A pure function: :func:`advance` takes a job's staged status, the events observed since, a
kind policy and the time, and returns the new status with one condition appended per state
change. No I/O: the GM's reconcile feeds it and writes the result; the policy (one per kind)
supplies what differs between incremental and lifelong learning.

Who moves what (as upstream Sedna, minus its bugs):

* the dataset node's LC cuts a round's data when the train trigger fires: (Train, Ready);
* the GM starts the stage's worker at once: (S, Starting); its process running: (S, Running);
* the worker's report completes the stage, and only with its output (a train worker that exits
  0 without reporting a model fails the stage; upstream #317/#387);
* after Eval the policy decides the deploy; the deploy node's LC puts the model in place
  (cold update: that completes Deploy, the inference worker restarts); with hot update the
  inference worker's reload report, relayed by its LC, completes Deploy;
* a Failed stage abandons the round: (Train, Waiting), and the next trigger starts a new one.

Events about another round or stage than the current one are stale and ignored, so a late or
repeated message (an LC or GM restart re-sends) never re-opens a finished stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from apis.base import ApiModel
from apis.kinds import StagedJobStatus
from apis.stages import (
    DeployDecision,
    RoundData,
    Stage,
    StageData,
    StagedCondition,
    StageInput,
    StageMessage,
    StageModel,
    StageOutput,
    StageState,
)

#: Conditions kept; the round state is explicit in status, so the cap loses only history.
MAX_STAGED_CONDITIONS = 60
#: Worker roles of the stages (the inference worker serves the deployed model).
STAGE_ROLES: dict[Stage, str] = {
    Stage.TRAIN: "train",
    Stage.EVAL: "eval",
    Stage.DEPLOY: "inference",
}

S, W = Stage, StageState
_ACTIVE = (W.STARTING, W.RUNNING)
_OUTPUT = {S.TRAIN: "a model", S.EVAL: "its metrics", S.DEPLOY: "a model load"}


class WorkerPhase(ApiModel):
    """The process of a stage's worker changed phase (from the LC's runtime)."""

    type: Literal["phase"] = "phase"
    stage: Stage
    round: int
    phase: Literal["Pending", "Running", "Succeeded", "Failed"]
    exit_code: int | None = None


class WorkerResult(ApiModel):
    """A stage's worker reported its outcome (``completed`` with models, or ``failed``)."""

    type: Literal["result"] = "result"
    stage: Stage
    round: int
    status: Literal["running", "completed", "failed"]
    models: list[StageModel] = []
    message: str | None = None


Event = StageMessage | WorkerPhase | WorkerResult


class StagedPolicy(Protocol):
    """What a staged kind decides; the engine does the rest."""

    def train_input(self, status: StagedJobStatus, data: RoundData) -> StageInput:
        """The Train stage's input for the round whose data ``data`` was just cut."""
        ...

    def eval_input(self, status: StagedJobStatus) -> StageInput:
        """The Eval stage's input (the models to compare and the round's eval data)."""
        ...

    def output_problem(self, stage: Stage, models: Sequence[StageModel]) -> str | None:
        """Why a worker's reported output cannot complete ``stage``; None when it can."""
        ...

    def decide_deploy(
        self, status: StagedJobStatus, output: StageOutput, now: datetime
    ) -> DeployDecision:
        """Whether the round's trained model is deployed, given the eval output."""
        ...

    def deploy_on_report(self) -> bool:
        """True when Deploy completes on the inference worker's reload report (hot update);
        False when it completes once the LC has put the model in place (cold: restart)."""
        ...


def timestamp(now: datetime) -> str:
    """RFC 3339 UTC seconds, as conditions carry."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def worker_name(job: str, stage: Stage, round_: int) -> str:
    """The name of a train or eval worker of a round (``<job>-train-3``); the inference worker
    is ``<job>-inference`` for the job's whole life."""
    if stage is S.DEPLOY:
        return f"{job}-{STAGE_ROLES[stage]}"
    return f"{job}-{STAGE_ROLES[stage]}-{round_}"


def worker_stage(job: str, worker: str, current_round: int) -> tuple[Stage, int] | None:
    """The stage and round a worker name of :func:`worker_name` belongs to, else None."""
    if worker == f"{job}-{STAGE_ROLES[S.DEPLOY]}":
        return S.DEPLOY, current_round
    for stage in (S.TRAIN, S.EVAL):
        prefix = f"{job}-{STAGE_ROLES[stage]}-"
        if worker.startswith(prefix) and worker[len(prefix) :].isdigit():
            return stage, int(worker[len(prefix) :])
    return None


@dataclass
class _Run:
    """One call of :func:`advance`: the status being built and the time."""

    status: StagedJobStatus
    policy: StagedPolicy
    now: datetime

    def move(
        self,
        stage: Stage,
        state: StageState,
        reason: str,
        message: str,
        data: StageData | None = None,
    ) -> None:
        status = self.status
        status.stage, status.state, status.message = stage, state, message
        if data is not None:
            status.stage_data = data
        condition = StagedCondition(
            type=state.value,
            status="True",
            stage=stage,
            round=status.round,
            reason=reason,
            message=message,
            data=data.to_json() if data is not None else None,
            last_transition_time=self.now,
            last_heartbeat_time=self.now,
        )
        conditions = [*(status.conditions or []), condition]
        status.conditions = conditions[-MAX_STAGED_CONDITIONS:]
        status.start_time = status.start_time or self.now.astimezone(UTC).replace(microsecond=0)

    # -- events ---------------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        status = self.status
        if isinstance(event, StageMessage):
            self._stage_message(event)
            return
        current = status.stage is event.stage and event.round == status.round
        if not current or status.state not in _ACTIVE:
            return  # stale: another round or stage, or the stage is already over
        if isinstance(event, WorkerPhase):
            self._phase(event)
        else:
            self._result(event)

    def _stage_message(self, event: StageMessage) -> None:
        status = self.status
        if event.stage is S.TRAIN and event.state is W.READY:
            waiting = status.stage is S.TRAIN and status.state is W.WAITING
            if not waiting or event.round != status.round + 1 or event.data is None:
                return  # a re-sent or early cut of a round that is not the next one
            status.round = event.round
            status.round_data = event.data
            data = StageData(input=self.policy.train_input(status, event.data))
            self.move(
                S.TRAIN,
                W.READY,
                "TriggerFired",
                event.message or f"round {event.round}: {event.data.train} train samples",
                data,
            )
            return
        in_deploy = status.stage is S.DEPLOY and status.state in _ACTIVE
        if event.stage is not S.DEPLOY or event.round != status.round or not in_deploy:
            return
        hot = self.policy.deploy_on_report()
        if event.state is W.FAILED:
            reason = "ModelLoadFailed" if status.state is W.RUNNING else "DeployFailed"
            self.move(S.DEPLOY, W.FAILED, reason, event.message or "deploy failed")
        elif event.state is W.COMPLETED and hot:
            trained = status.trained_model
            loaded = {m.url for m in event.models or []}
            if trained is not None and trained.url in loaded:
                self._deployed(event.message or "the inference worker loaded the new model")
        elif event.state is W.RUNNING and status.state is W.STARTING:
            if hot:
                self.move(
                    S.DEPLOY,
                    W.RUNNING,
                    "ModelInPlace",
                    event.message or "model in place; waiting for the inference worker to load it",
                )
            else:
                self._deployed(event.message or "model file replaced; inference worker restarted")

    def _phase(self, event: WorkerPhase) -> None:
        stage, role = event.stage, STAGE_ROLES[event.stage]
        if event.phase == "Running" and self.status.state is W.STARTING and stage is not S.DEPLOY:
            self.move(stage, W.RUNNING, "WorkerRunning", f"the {role} worker is running")
        elif event.phase == "Failed" and stage is not S.DEPLOY:
            code = f" (exit code {event.exit_code})" if event.exit_code is not None else ""
            self.move(stage, W.FAILED, "WorkerFailed", f"the {role} worker failed{code}")
        elif event.phase == "Succeeded" and stage is not S.DEPLOY:
            self.move(
                stage,
                W.FAILED,
                "NoOutput",
                f"the {role} worker exited without reporting {_OUTPUT[stage]}",
            )

    def _result(self, event: WorkerResult) -> None:
        stage, role = event.stage, STAGE_ROLES[event.stage]
        if event.status == "running" or stage is S.DEPLOY:
            return  # the inference worker's reload outcome comes as a StageMessage
        if event.status == "failed":
            detail = f": {event.message}" if event.message else ""
            self.move(
                stage,
                W.FAILED,
                "WorkerReportedFailure",
                f"the {role} worker reported a failure{detail}",
            )
            return
        problem = self.policy.output_problem(stage, event.models)
        if problem is not None:
            self.move(stage, W.FAILED, "BadOutput", f"the {role} worker's output: {problem}")
            return
        output = StageOutput(models=list(event.models))
        data = StageData(input=(self.status.stage_data or StageData()).input, output=output)
        if stage is S.TRAIN:
            self.status.trained_model = event.models[0]
        self.move(stage, W.COMPLETED, "WorkerCompleted", f"the {role} worker completed", data)

    def _deployed(self, message: str) -> None:
        self.status.deployed_model = self.status.trained_model
        self.status.deploys += 1
        self.move(S.DEPLOY, W.COMPLETED, "Deployed", message)

    # -- what follows by itself -----------------------------------------------------------

    def settle(self) -> None:
        """Take every transition that needs no outside event, until none is left."""
        status = self.status
        for _ in range(12):  # a round has fewer automatic steps than this
            stage, state = status.stage, status.state
            if stage is None or state is None:
                self.move(S.TRAIN, W.WAITING, "WaitingForTrigger", "waiting for the train trigger")
            elif state is W.READY and stage is not S.DEPLOY:
                self.move(
                    stage, W.STARTING, "WorkerCreated", f"starting the {STAGE_ROLES[stage]} worker"
                )
            elif state is W.READY:
                self.move(S.DEPLOY, W.STARTING, "Deploying", "putting the new model in place")
            elif state is W.FAILED:
                status.failed_rounds += 1
                self.move(
                    S.TRAIN,
                    W.WAITING,
                    "RoundFailed",
                    f"round {status.round} abandoned ({status.message}); waiting for the trigger",
                )
            elif state is W.COMPLETED and stage is S.TRAIN:
                self.move(
                    S.EVAL, W.WAITING, "TrainCompleted", "waiting to evaluate the trained model"
                )
            elif state is W.WAITING and stage is S.EVAL:
                data = StageData(input=self.policy.eval_input(status))
                self.move(S.EVAL, W.READY, "EvalDataReady", "the round's eval data is ready", data)
            elif state is W.COMPLETED and stage is S.EVAL:
                self.move(S.DEPLOY, W.WAITING, "EvalCompleted", "deciding whether to deploy")
            elif state is W.WAITING and stage is S.DEPLOY:
                self._decide()
            elif state is W.COMPLETED and stage is S.DEPLOY:
                self.move(S.TRAIN, W.WAITING, "WaitingForTrigger", "waiting for the train trigger")
            else:
                return

    def _decide(self) -> None:
        status = self.status
        output = (status.stage_data or StageData()).output or StageOutput()
        decision = self.policy.decide_deploy(status, output, self.now)
        status.last_decision = decision
        if decision.deploy:
            models = [m for m in (status.trained_model,) if m is not None]
            data = StageData(input=StageInput(models=models))
            self.move(S.DEPLOY, W.READY, "DeployDecided", f"deploy: {decision.reason}", data)
        else:
            status.skipped_deploys += 1
            self.move(S.DEPLOY, W.COMPLETED, "NoDeploy", f"no need to deploy: {decision.reason}")


def advance(
    status: StagedJobStatus,
    events: Sequence[Event],
    policy: StagedPolicy,
    now: datetime,
) -> StagedJobStatus:
    """The staged status after ``events`` (in order) and every automatic transition."""
    run = _Run(status=status.model_copy(deep=True), policy=policy, now=now)
    run.settle()
    for event in events:
        run.apply(event)
        run.settle()
    return run.status


def active_stage(status: StagedJobStatus) -> tuple[Stage, int] | None:
    """The train or eval stage whose worker must run now (Starting or Running), if any."""
    if status.stage in (S.TRAIN, S.EVAL) and status.state in _ACTIVE:
        return status.stage, status.round
    return None
