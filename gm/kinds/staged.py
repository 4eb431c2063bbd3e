"""The GM side shared by the staged kinds (incremental and lifelong learning).

:class:`StagedKind` is a :class:`JobPolicy` that keeps the round in status and moves it with the
pure engine :mod:`gm.staged`: recorded messages (worker reports, the LCs' stage messages) and
observed worker phases become engine events. A staged kind adds what differs: its workers per
stage, the engine hooks (:class:`gm.staged.StagedPolicy`: stage inputs, output checks, the
deploy decision) and the directive its nodes act on.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from apis import OwnerReference, Resource, WorkerMessage, WorkerStatus
from apis.kinds import StagedJobStatus
from apis.stages import (
    STAGED_ANNOTATION,
    Stage,
    StagedDirective,
    StageMessage,
    StageModel,
    StageState,
)
from gm import plan
from gm.kinds.base import JobPolicy, JobSeries, Message, Sample, Status
from gm.plan import DesiredWorker, PlanContext, PlanError
from gm.reports import merge_metrics, upsert_worker
from gm.staged import STAGE_ROLES, Event, StagedPolicy, WorkerPhase, WorkerResult, advance

_STAGE_OF_ROLE = {role: stage for stage, role in STAGE_ROLES.items()}


def parse_stamp(stamp: str) -> datetime:
    """An RFC 3339 time as an aware datetime (now when it cannot be read)."""
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(UTC)


def round_of(worker: str) -> int | None:
    """The round in a train or eval worker's name ``<job>-<role>-<round>``."""
    tail = worker.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def output_dir(job: Any) -> str:
    """A staged job's ``spec.outputDir``, required (round files and outputs go there)."""
    if not job.spec.output_dir:
        raise PlanError("spec.outputDir: Required value")
    return job.spec.output_dir.rstrip("/")


def staged(status: Status) -> StagedJobStatus:
    """The staged view of a raw status."""
    return StagedJobStatus.model_validate(status or {})


def merged(status: Status, new: StagedJobStatus) -> Status:
    """``status`` with the staged fields of ``new`` (other keys kept as they were)."""
    return {**status, **new.to_api()}


class StagedKind(JobPolicy):
    """A job kind run by the staged engine."""

    #: Prefix of the kind's Prometheus series, e.g. ``sedna_incremental``.
    series_prefix: ClassVar[str]

    @abstractmethod
    def engine(self, job: Any, ctx: PlanContext) -> StagedPolicy:
        """The engine hooks for one job."""

    @abstractmethod
    def stage_workers(
        self, job: Any, owner: OwnerReference, ctx: PlanContext, status: StagedJobStatus
    ) -> list[DesiredWorker]:
        """The workers ``job`` needs in the state ``status`` is in."""

    @abstractmethod
    def directive(self, job: Any, ctx: PlanContext, status: StagedJobStatus) -> StagedDirective:
        """What the job's nodes must know of its round."""

    def nodes(self, job: Any, ctx: PlanContext) -> set[str]:
        """Nodes that take part besides those running a worker: the dataset's node (it cuts
        the rounds) and the deploy node (it puts models in place)."""
        deploy = plan.node_of(job.spec.deploy_spec.template, "spec.deploySpec")
        dataset = ctx.dataset_nodes.get(job.spec.dataset.name)
        return {deploy, dataset} - {None}  # type: ignore[return-value]

    def fold_extra(self, status: Status, message: WorkerMessage, role: str | None) -> None:
        """Change ``status`` in place from a worker's report, beyond the round (e.g. lifelong
        learning's ``knowledgeBase``); nothing by default."""

    # -- JobPolicy ------------------------------------------------------------------------

    def bind(self, job: Resource, ctx: PlanContext) -> JobPolicy:
        """This policy for one job: the engine hooks need its spec and the models' URLs."""
        return _Bound(self, job, ctx)

    def plan(
        self, job: Any, owner: OwnerReference, ctx: PlanContext, status: Status
    ) -> list[DesiredWorker]:
        """The workers of the stage the job is in (a new job: the inference worker, if any)."""
        current = advance(staged(status), [], self.engine(job, ctx), datetime.now(UTC))
        return self.stage_workers(job, owner, ctx, current)

    def downstream(
        self,
        job: Any,
        ctx: PlanContext,
        canonical: dict[str, Any],
        workers: Sequence[DesiredWorker],
        status: Status,
    ) -> list[tuple[str, dict[str, Any]]]:
        """The job object, with its directive, for every node taking part."""
        current = advance(staged(status), [], self.engine(job, ctx), datetime.now(UTC))
        body = dict(canonical)
        meta = dict(body.get("metadata") or {})
        annotations = dict(meta.get("annotations") or {})
        annotations[STAGED_ANNOTATION] = self.directive(job, ctx, current).model_dump_json(
            by_alias=True, exclude_none=True
        )
        meta["annotations"] = annotations
        body["metadata"] = meta
        nodes = {w.node for w in workers} | self.nodes(job, ctx)
        return [(node, body) for node in sorted(nodes)]

    def fold(self, status: Status, message: Message, role: str | None, stamp: str) -> Status:
        raise TypeError("a staged kind folds through its bound policy (bind)")

    def derive(
        self, status: Status, workers: Sequence[WorkerStatus], expected: int, stamp: str
    ) -> Status:
        raise TypeError("a staged kind derives through its bound policy (bind)")

    def series(self) -> tuple[JobSeries, ...]:
        """Round, stage and state, samples per round, deploy decisions, failed rounds."""
        p = self.series_prefix
        return (
            JobSeries(f"{p}_round", "The job's current round (0 before the first)"),
            JobSeries(f"{p}_stage", "1 for the stage and state the job is in", ("stage", "state")),
            JobSeries(f"{p}_round_samples", "Samples of the current round", ("set",)),
            JobSeries(f"{p}_deploy_decisions", "Rounds by deploy decision", ("decision",)),
            JobSeries(f"{p}_failed_rounds", "Rounds abandoned by a failure"),
            JobSeries(f"{p}_inference", "The inference worker's counters", ("counter",)),
            JobSeries(
                f"{p}_deploy_status",
                "1 for the deploy status: Waiting, Ok (the last round's model was deployed), "
                "NotOk (judged not worth it, or failed)",
                ("status",),
            ),
            JobSeries(
                f"{p}_model_info",
                "1 per model of the job: trained (the round's output, evaluated next), deployed",
                ("model", "url"),
            ),
            JobSeries(
                f"{p}_eval_metric",
                "The metrics (values and deltas) the last deploy decision saw",
                ("metric",),
            ),
        )

    def samples(self, status: Status) -> Iterable[Sample]:
        """The series above from the staged status."""
        p, job = self.series_prefix, staged(status)
        if job.stage is None:  # not reconciled yet: no series
            return
        yield f"{p}_round", (), job.round
        if job.stage is not None and job.state is not None:
            yield f"{p}_stage", (job.stage.value, job.state.value), 1
        if job.round_data is not None:
            yield f"{p}_round_samples", ("train",), job.round_data.train
            yield f"{p}_round_samples", ("eval",), job.round_data.eval
        yield f"{p}_deploy_decisions", ("deploy",), job.deploys
        yield f"{p}_deploy_decisions", ("skip",), job.skipped_deploys
        yield f"{p}_failed_rounds", (), job.failed_rounds
        yield f"{p}_deploy_status", (_deploy_status(job),), 1
        for model, value in (("trained", job.trained_model), ("deployed", job.deployed_model)):
            if value is not None:
                yield f"{p}_model_info", (model, value.url), 1
        decision = job.last_decision
        for metric, number in ((decision.metrics or {}) if decision else {}).items():
            if isinstance(number, int | float) and not isinstance(number, bool):
                yield f"{p}_eval_metric", (metric,), float(number)
        metrics = {m.get("key"): m.get("value") for m in status.get("metrics") or []}
        for counter, key in (
            ("inferences", "inferenceNumber"),
            ("hard_examples", "hardExampleNumber"),
        ):
            try:
                yield f"{p}_inference", (counter,), float(metrics[key])
            except (KeyError, TypeError, ValueError):
                continue


def _deploy_status(job: StagedJobStatus) -> str:
    """Seed 004's DeployStatus: Waiting while a deploy is under way or none was decided yet,
    then Ok or NotOk after the last round's decision (NotOk: not worth it, or it failed)."""
    if job.stage is Stage.DEPLOY and job.state is StageState.FAILED:
        return "NotOk"
    if job.stage is Stage.DEPLOY or job.last_decision is None:
        return "Waiting"
    return "Ok" if job.last_decision.deploy else "NotOk"


class _Bound(JobPolicy):
    """A staged kind bound to one job: folds and derives through the engine."""

    def __init__(self, kind: StagedKind, job: Any, ctx: PlanContext) -> None:
        self.kind_policy, self.job, self.ctx = kind, job, ctx
        self.hooks = kind.engine(job, ctx)

    def plan(
        self, job: Any, owner: OwnerReference, ctx: PlanContext, status: Status
    ) -> list[DesiredWorker]:
        return self.kind_policy.plan(job, owner, ctx, status)

    def fold(self, status: Status, message: Message, role: str | None, stamp: str) -> Status:
        """Worker reports and the LCs' stage messages move the round."""
        events: list[Event] = []
        status = dict(status)
        if isinstance(message, StageMessage):
            events.append(message)
        elif isinstance(message, WorkerMessage):
            entry = upsert_worker(status, message, stamp)
            if role:
                entry["role"] = role
            self.kind_policy.fold_extra(status, message, role)
            output = message.output
            stage = _STAGE_OF_ROLE.get(role or "")
            if stage is Stage.DEPLOY and output is not None:
                progress = output.progress()
                merge_metrics(status, {k: v for k, v in progress.items() if k != "message"})
            elif stage is not None and message.status in ("completed", "failed"):
                round_ = round_of(message.worker)
                if round_ is not None:
                    models = (
                        [StageModel.model_validate(m.to_api()) for m in (output.models or [])]
                        if output
                        else []
                    )
                    detail = output.progress().get("message") if output else None
                    events.append(
                        WorkerResult(
                            stage=stage,
                            round=round_,
                            status=message.status,
                            models=models,
                            message=detail,
                        )
                    )
        else:
            return status
        if not events:
            return status
        return merged(status, advance(staged(status), events, self.hooks, parse_stamp(stamp)))

    def derive(
        self, status: Status, workers: Sequence[WorkerStatus], expected: int, stamp: str
    ) -> Status:
        """The workers' phases move the round too; then counts."""
        events: list[Event] = []
        for worker in workers:
            stage, round_ = _STAGE_OF_ROLE.get(worker.role or ""), round_of(worker.name)
            if stage in (Stage.TRAIN, Stage.EVAL) and round_ is not None and worker.phase:
                events.append(
                    WorkerPhase(
                        stage=stage, round=round_, phase=worker.phase, exit_code=worker.exit_code
                    )
                )
        status = merged(status, advance(staged(status), events, self.hooks, parse_stamp(stamp)))
        status["active"] = sum(1 for w in workers if w.phase == "Running")
        status["failed"] = sum(1 for w in workers if w.phase == "Failed")
        return status
