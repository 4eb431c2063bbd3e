"""LifelongLearningJob: the staged engine with a knowledge base instead of Model objects.

A train worker per round learns (round 1) or updates (later rounds) the job's tasks and
stores the task index in the knowledge base; an eval worker scores each task and flags the
deployable ones; the round deploys when the evaluation passed at least one task, by copying the
eval round's index to ``<outputDir>/deploy/index.json`` on the deploy node (cold update). The
inference worker is created at the first deploy and restarted at each later one (upstream).

Environment (upstream Sedna's contract): train ``TRAIN_DATASET_URL`` (the round's file, csv
header kept), ``ORIGINAL_DATASET_URL``, ``OUTPUT_URL`` (``<outputDir>/train/<r>``),
``KB_SERVER``, ``HAS_COMPLETED_INITIAL_TRAINING`` and, after the first round, ``CLOUD_KB_INDEX``
(the last trained index); eval ``TEST_DATASET_URL``, ``ORIGINAL_DATASET_URL``, ``MODEL_URLS``
(the round's trained index), ``OUTPUT_URL`` (``<outputDir>/eval/<r>``), ``KB_SERVER``; inference
``MODEL_URLS`` (``<outputDir>/deploy/index.json``) and ``OUTPUT_URL`` (``<outputDir>``).

``status.knowledgeBase`` follows the workers' reports: task models and classes from the train
and eval reports (upstream's ``current_metric``, ``classes``, ``number_of_labeled_unseen_sample``,
plus ``task_samples``), unseen samples from the inference worker's ``unseenNumber``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from apis import LifelongLearningJob, OwnerReference, WorkerMessage
from apis.kinds import KBClasses, KBModel, KBModels, KnowledgeBaseStatus, StagedJobStatus
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
from gm import plan
from gm.kinds.base import JobSeries, Sample, Status
from gm.kinds.staged import StagedKind, output_dir
from gm.plan import DesiredWorker, PlanContext
from gm.staged import active_stage, worker_name

DEPLOYED_INDEX = "deploy/index.json"
INDEX_FILE = "index.json"


def _number(metrics: dict[str, Any] | None, key: str) -> float | None:
    try:
        return float((metrics or {})[key])
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True)
class LifelongHooks:
    """The engine hooks of one lifelong learning job."""

    job: LifelongLearningJob

    def train_input(self, status: StagedJobStatus, data: RoundData) -> StageInput:
        """The round's train file; after the first round, the last trained index to update."""
        known = status.trained_model
        return StageInput(
            models=[StageModel(format=known.format, url=known.url)] if known else [],
            data_url=data.train_url,
            output_dir=f"{output_dir(self.job)}/train/{status.round}",
        )

    def eval_input(self, status: StagedJobStatus) -> StageInput:
        """The trained index, on the round's eval file (the last few rounds' eval samples)."""
        trained = status.trained_model
        return StageInput(
            models=[StageModel(format=trained.format, url=trained.url)] if trained else [],
            data_url=status.round_data.eval_url if status.round_data else None,
            output_dir=f"{output_dir(self.job)}/eval/{status.round}",
        )

    def output_problem(self, stage: Stage, models: Sequence[StageModel]) -> str | None:
        """Train must report its index; eval the index it scored, with its metrics."""
        if not models:
            return f"the {stage.value.lower()} worker reported no task index"
        if stage is Stage.EVAL and _number(models[0].metrics, "deployable_tasks") is None:
            return "the eval result has no deployable_tasks metric (LifelongLearning.evaluate)"
        return None

    def decide_deploy(
        self, status: StagedJobStatus, output: StageOutput, now: datetime
    ) -> DeployDecision:
        """Deploy when the evaluation passed at least one of the tasks it scored."""
        result = (output.models or [])[0]
        passed = int(_number(result.metrics, "deployable_tasks") or 0)
        scored = int(_number(result.metrics, "evaluated_tasks") or 0)
        if passed:
            reason = f"{passed} of {scored} evaluated tasks pass the eval filter"
        else:
            reason = (
                f"none of the {scored} evaluated tasks passes the eval filter "
                "(operator / model_threshold); the served knowledge stays as it is"
            )
        metrics = {**(result.metrics or {}), "index": result.url}
        return DeployDecision(
            round=status.round, deploy=bool(passed), reason=reason, metrics=metrics
        )

    def deploy_on_report(self) -> bool:
        """Cold update: Deploy completes once the index is in place (the worker restarts)."""
        return False


class LifelongLearningPolicy(StagedKind):
    """Grow a knowledge base of tasks round after round; serve it on the edge."""

    kind: ClassVar[str] = LifelongLearningJob.KIND
    series_prefix: ClassVar[str] = "sedna_lifelong"

    def engine(self, job: Any, ctx: PlanContext) -> LifelongHooks:
        """The hooks for ``job``."""
        return LifelongHooks(job)

    def stage_workers(
        self, job: Any, owner: OwnerReference, ctx: PlanContext, status: StagedJobStatus
    ) -> list[DesiredWorker]:
        """The inference worker once something was deployed; the round's train or eval worker."""
        ll: LifelongLearningJob = job
        spec, name, out = ll.spec, ll.metadata.name, output_dir(ll)
        dataset_url = plan.need(ctx.dataset_urls, spec.dataset.name, "dataset")
        kb = {"KB_SERVER": ctx.kb_server} if ctx.kb_server else {}
        workers = []
        if status.deployed_model is not None:
            env = {
                "MODEL_URLS": f"{out}/{DEPLOYED_INDEX}",
                "OUTPUT_URL": out,
                # A new value restarts the worker on the new index (upstream restarts it).
                "SEDNA_SERVED_MODEL": status.deployed_model.url,
            }
            workers.append(
                plan.desired_worker(
                    ll,
                    owner,
                    role="inference",
                    name=worker_name(name, Stage.DEPLOY, status.round),
                    node=plan.node_of(spec.deploy_spec.template, "spec.deploySpec"),
                    template=spec.deploy_spec.template,
                    env=env,
                )
            )
        active = active_stage(status)
        if active is None:
            return workers
        stage, round_ = active
        data = status.stage_data.input if status.stage_data and status.stage_data.input else None
        data = data or StageInput()
        known = data.models or []
        if stage is Stage.TRAIN:
            template, where = spec.train_spec.template, "spec.trainSpec"
            env = {
                "TRAIN_DATASET_URL": data.data_url or "",
                "OUTPUT_URL": data.output_dir or f"{out}/train/{round_}",
                "HAS_COMPLETED_INITIAL_TRAINING": "true" if known else "false",
            }
            if known:
                env["CLOUD_KB_INDEX"] = known[0].url
        else:
            template, where = spec.eval_spec.template, "spec.evalSpec"
            env = {
                "TEST_DATASET_URL": data.data_url or "",
                "MODEL_URLS": ";".join(m.url for m in known),
                "OUTPUT_URL": data.output_dir or f"{out}/eval/{round_}",
            }
        workers.append(
            plan.desired_worker(
                ll,
                owner,
                role="train" if stage is Stage.TRAIN else "eval",
                name=worker_name(name, stage, round_),
                node=plan.node_of(template, where),
                template=template,
                env={**env, "ORIGINAL_DATASET_URL": dataset_url, **kb},
                restart_policy="Never",  # a failure fails the stage; the next trigger retries
            )
        )
        return workers

    def directive(self, job: Any, ctx: PlanContext, status: StagedJobStatus) -> StagedDirective:
        """The round, and in (Deploy, Starting) the eval index to put in place."""
        ll: LifelongLearningJob = job
        out = output_dir(ll)
        action = None
        decision = status.last_decision
        deploying = status.stage is Stage.DEPLOY and status.state is StageState.STARTING
        if deploying and decision is not None and decision.round == status.round:
            index = (decision.metrics or {}).get(
                "index"
            ) or f"{out}/eval/{status.round}/{INDEX_FILE}"
            action = DeployAction(
                round=status.round, model_url=str(index), target_url=f"{out}/{DEPLOYED_INDEX}"
            )
        return StagedDirective(
            round=status.round,
            stage=status.stage or Stage.TRAIN,
            state=status.state or StageState.WAITING,
            deploy_node=plan.node_of(ll.spec.deploy_spec.template, "spec.deploySpec"),
            deploy=action,
        )

    def fold_extra(self, status: Status, message: WorkerMessage, role: str | None) -> None:
        """``status.knowledgeBase`` from what the workers report of the knowledge base."""
        output = message.output
        if output is None:
            return
        kb = KnowledgeBaseStatus.model_validate(status.get("knowledgeBase") or {})
        if role in ("train", "eval") and message.status == "completed" and output.models:
            _learnt(kb, output.models[0].to_api())
        elif role == "inference" and output.progress().get("unseenNumber") is not None:
            kb.samples.number_of_unseen_sample = int(output.progress()["unseenNumber"])
        else:
            return
        status["knowledgeBase"] = kb.to_api()

    def series(self) -> tuple[JobSeries, ...]:
        """The staged series plus known tasks, models, classes and unseen samples."""
        p = self.series_prefix
        return (
            *super().series(),
            JobSeries(f"{p}_known_tasks", "Task models in the job's knowledge base"),
            JobSeries(f"{p}_classes", "Classes the knowledge base knows"),
            JobSeries(f"{p}_samples", "Inferred samples by whether their task is known", ("set",)),
            JobSeries(f"{p}_labeled_unseen_samples", "Unseen samples labelled and learnt"),
        )

    def samples(self, status: Status) -> Iterable[Sample]:
        """The series above from the status."""
        yield from super().samples(status)
        p = self.series_prefix
        kb = status.get("knowledgeBase")
        if kb:
            known = KnowledgeBaseStatus.model_validate(kb)
            yield f"{p}_known_tasks", (), known.ai_models.number_of_ai_models
            yield f"{p}_classes", (), known.ai_classes.number_of_ai_classes
            yield (
                f"{p}_labeled_unseen_samples",
                (),
                known.samples.number_of_labeled_unseen_sample,
            )
        metrics = {m.get("key"): m.get("value") for m in status.get("metrics") or []}
        for counter, key in (("seen", "seenNumber"), ("unseen", "unseenNumber")):
            try:
                yield f"{p}_samples", (counter,), float(metrics[key])
            except (KeyError, TypeError, ValueError):
                continue


def _learnt(kb: KnowledgeBaseStatus, report: dict[str, Any]) -> None:
    """Fold a train or eval report (its index model) into ``kb``: the tasks it names are what
    the knowledge base now holds; scores and sample counts it carries replace older ones."""
    samples: dict[str, int] = report.get("task_samples") or {}
    scores: dict[str, dict[str, float]] = report.get("current_metric") or {}
    before = {m.model_id: m for m in kb.ai_models.list_of_ai_models}
    models = []
    for task in samples or before:
        model = before.get(task) or KBModel(model_id=task)
        if task in samples:
            model.number_of_train_samples = int(samples[task])
        first = next(iter((scores.get(task) or {}).values()), None)
        if first is not None:
            model.average_precision = float(first)
        models.append(model)
    kb.ai_models = KBModels(number_of_ai_models=len(models), list_of_ai_models=models)
    classes = [str(c) for c in report.get("classes") or kb.ai_classes.list_of_ai_classes]
    kb.ai_classes = KBClasses(number_of_ai_classes=len(classes), list_of_ai_classes=classes)
    labeled = report.get("number_of_labeled_unseen_sample")
    if labeled is not None:
        kb.samples.number_of_labeled_unseen_sample = int(labeled)
