"""IncrementalLearningJob: the staged engine with an inference worker from the start, a train
worker per round from its base model, an eval worker comparing the trained and the deployed
model, and a deploy decided by the deploy trigger on their metrics (cold or hot update).

Environment (upstream Sedna's contract): train ``TRAIN_DATASET_URL`` (the round's file),
``BASE_MODEL_URL`` (the initial model, then the last trained one), ``MODEL_URL`` (the round's
output directory ``<outputDir>/train/<r>``), ``ORIGINAL_DATASET_URL``; eval ``TEST_DATASET_URL``,
``MODEL_URLS`` (``trained;deployed``), ``ORIGINAL_DATASET_URL``; inference ``MODEL_URL`` (the
deploy Model), ``HEM_NAME``/``HEM_PARAMETERS`` and, with ``hotUpdateEnabled``,
``MODEL_HOT_UPDATE``, ``MODEL_POLL_PERIOD_SECONDS``, ``MODEL_HOT_UPDATE_CONFIG``
(``<outputDir>/model-hot-update/model_config.json``, written by the deploy node's LC).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from apis import IncrementalLearningJob, OwnerReference
from apis.kinds import StagedJobStatus
from apis.stages import (
    DeployAction,
    DeployDecision,
    RoundData,
    Stage,
    StagedDirective,
    StageInput,
    StageModel,
    StageOutput,
    StageState,
)
from apis.triggers import evaluate, metric_deltas
from gm import plan
from gm.kinds.staged import StagedKind, output_dir
from gm.plan import DesiredWorker, PlanContext
from gm.staged import active_stage, worker_name

HOT_UPDATE_CONFIG = "model-hot-update/model_config.json"


@dataclass(frozen=True)
class IncrementalHooks:
    """The engine hooks of one incremental learning job."""

    job: IncrementalLearningJob
    ctx: PlanContext

    def _model(self, name: str) -> StageModel:
        return StageModel(url=plan.need(self.ctx.model_urls, name, "model"))

    def train_input(self, status: StagedJobStatus, data: RoundData) -> StageInput:
        """Train from the last trained model (the initial model in round 1)."""
        base = status.trained_model or self._model(self.job.spec.initial_model.name)
        out = f"{output_dir(self.job)}/train/{status.round}"
        return StageInput(
            models=[StageModel(format=base.format, url=base.url)],
            data_url=data.train_url,
            output_dir=out,
        )

    def eval_model(self, status: StagedJobStatus) -> StageModel:
        """What the trained model is compared with: the served model (``initialEvalModel``
        before anything was deployed, when given, else the deploy Model)."""
        if status.deployed_model is not None:
            return StageModel(format=status.deployed_model.format, url=status.deployed_model.url)
        initial = self.job.spec.eval_spec.initial_eval_model
        return self._model(initial.name if initial else self.job.spec.deploy_spec.model.name)

    def eval_input(self, status: StagedJobStatus) -> StageInput:
        """The trained and the compared model, on the round's eval file."""
        trained = status.trained_model
        models = [StageModel(format=trained.format, url=trained.url)] if trained else []
        data = status.round_data.eval_url if status.round_data else None
        return StageInput(models=[*models, self.eval_model(status)], data_url=data)

    def output_problem(self, stage: Stage, models: Sequence[StageModel]) -> str | None:
        """Train must report its model; eval one result per model it was given, with metrics."""
        if stage is Stage.TRAIN and not models:
            return "the train worker reported no model"
        if stage is Stage.EVAL:
            if len(models) < 2:
                return f"{len(models)} results; expected 2 (trained model, then deployed model)"
            if not models[0].metrics or not models[1].metrics:
                return "an eval result has no metrics"
        return None

    def decide_deploy(
        self, status: StagedJobStatus, output: StageOutput, now: datetime
    ) -> DeployDecision:
        """The deploy trigger on the trained model's metrics and their ``_delta``."""
        new, old = (output.models or [])[:2]
        metrics = metric_deltas(new.metrics or {}, old.metrics or {})
        result = evaluate(self.job.spec.deploy_spec.trigger, metrics, now.astimezone())
        return DeployDecision(
            round=status.round, deploy=result.fired, reason=result.reason, metrics=metrics
        )

    def deploy_on_report(self) -> bool:
        """Hot update completes Deploy when the inference worker reports it loaded the model."""
        return bool(self.job.spec.deploy_spec.model.hot_update_enabled)


class IncrementalLearningPolicy(StagedKind):
    """Train, evaluate and deploy again as new samples arrive on the dataset's node."""

    kind: ClassVar[str] = IncrementalLearningJob.KIND
    series_prefix: ClassVar[str] = "sedna_incremental"

    def engine(self, job: Any, ctx: PlanContext) -> IncrementalHooks:
        """The hooks for ``job``."""
        return IncrementalHooks(job, ctx)

    def stage_workers(
        self, job: Any, owner: OwnerReference, ctx: PlanContext, status: StagedJobStatus
    ) -> list[DesiredWorker]:
        """The inference worker always; the train or eval worker of the current round."""
        il: IncrementalLearningJob = job
        spec, name, out = il.spec, il.metadata.name, output_dir(il)
        deploy = spec.deploy_spec
        deploy_url = plan.need(ctx.model_urls, deploy.model.name, "model")
        dataset_url = plan.need(ctx.dataset_urls, spec.dataset.name, "dataset")
        infer_env = {"MODEL_URL": deploy_url, **plan.hem_env(deploy.hard_example_mining)}
        if deploy.model.hot_update_enabled:
            infer_env |= {
                "MODEL_HOT_UPDATE": "true",
                "MODEL_POLL_PERIOD_SECONDS": str(deploy.model.poll_period_seconds),
                "MODEL_HOT_UPDATE_CONFIG": f"{out}/{HOT_UPDATE_CONFIG}",
            }
        else:  # a changed value restarts the worker on the new model file (cold update)
            served = status.deployed_model.url if status.deployed_model else deploy_url
            infer_env["SEDNA_SERVED_MODEL"] = served
        workers = [
            plan.desired_worker(
                il,
                owner,
                role="inference",
                name=worker_name(name, Stage.DEPLOY, status.round),
                node=plan.node_of(deploy.template, "spec.deploySpec"),
                template=deploy.template,
                env=infer_env,
            )
        ]
        active = active_stage(status)
        if active is None:
            return workers
        stage, round_ = active
        data = (
            status.stage_data.input
            if status.stage_data and status.stage_data.input
            else StageInput()
        )
        if stage is Stage.TRAIN:
            template, where = spec.train_spec.template, "spec.trainSpec"
            env = {
                "TRAIN_DATASET_URL": data.data_url or "",
                "BASE_MODEL_URL": (data.models or [StageModel(url="")])[0].url,
                "MODEL_URL": data.output_dir or f"{out}/train/{round_}",
            }
        else:
            template, where = spec.eval_spec.template, "spec.evalSpec"
            env = {
                "TEST_DATASET_URL": data.data_url or "",
                "MODEL_URLS": ";".join(m.url for m in data.models or []),
            }
        env["ORIGINAL_DATASET_URL"] = dataset_url
        workers.append(
            plan.desired_worker(
                il,
                owner,
                role="train" if stage is Stage.TRAIN else "eval",
                name=worker_name(name, stage, round_),
                node=plan.node_of(template, where),
                template=template,
                env=env,
                restart_policy="Never",  # a failure fails the stage; the next trigger retries
            )
        )
        return workers

    def directive(self, job: Any, ctx: PlanContext, status: StagedJobStatus) -> StagedDirective:
        """The round, and in (Deploy, Starting) the model to put in place."""
        il: IncrementalLearningJob = job
        model = il.spec.deploy_spec.model
        target = plan.need(ctx.model_urls, model.name, "model")
        action = None
        deploying = status.stage is Stage.DEPLOY and status.state is StageState.STARTING
        if deploying and status.trained_model is not None:
            action = DeployAction(
                round=status.round,
                model_url=status.trained_model.url,
                target_url=target,
                hot_update_config=f"{output_dir(il)}/{HOT_UPDATE_CONFIG}"
                if model.hot_update_enabled
                else None,
            )
        served = (
            status.deployed_model.url
            if status.deployed_model and model.hot_update_enabled
            else None
        )
        return StagedDirective(
            round=status.round,
            stage=status.stage or Stage.TRAIN,
            state=status.state or StageState.WAITING,
            deploy_node=plan.node_of(il.spec.deploy_spec.template, "spec.deploySpec"),
            deploy=action,
            served_model_url=served,
            target_url=target if served else None,
        )
