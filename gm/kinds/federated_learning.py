"""FederatedLearningJob: training workers on the edges, an aggregation worker in the cloud.

Legacy ``edgeai.io`` FederatedLearningTasks reach this policy converted (``apis.to_canonical``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from apis import FederatedLearningJob, Model, OwnerReference, WorkerOutput, WorkerStatus
from gm import plan
from gm import status as rules
from gm.kinds.base import JobPolicy, JobSeries, Sample, Status
from gm.plan import DesiredWorker, PlanContext

TERMINAL = ("Succeeded", "Failed")


def federated_learning_status(
    previous: Status, workers: Sequence[WorkerStatus], expected: int, timestamp: str
) -> Status:
    """The job's phase follows its aggregation worker, which decides when training ends.

    A training worker that fails is counted but does not fail the job: the aggregator goes on
    with the others as long as enough of them remain.
    """
    aggregation = next((w for w in workers if w.role == "aggregation"), None)
    active = rules.count(workers, "Running")
    succeeded = rules.count(workers, "Succeeded")
    failed = rules.count(workers, "Failed")
    status = dict(previous)
    if previous.get("phase") in TERMINAL:
        phase = previous["phase"]
    elif aggregation is not None and aggregation.phase in TERMINAL:
        phase = str(aggregation.phase)
    elif active:
        phase = "Running"
    else:
        phase = "Pending"
    ctype, reason, message = {
        "Pending": ("Pending", "WorkersStarting", f"{active}/{expected} workers running"),
        "Running": ("Training", "Training", f"{active} workers running"),
        "Succeeded": ("Complete", "Completed", "the aggregation worker finished"),
        "Failed": ("Failed", "AggregationFailed", "the aggregation worker failed"),
    }[phase]
    status["conditions"] = rules.with_condition(
        previous.get("conditions") or [], ctype, reason, message, timestamp, "lastProbeTime"
    )
    status.setdefault("startTime", timestamp)
    if phase in TERMINAL:
        status.setdefault("completionTime", timestamp)
    status.update(phase=phase, active=active, succeeded=succeeded, failed=failed)
    return status


class FederatedLearningPolicy(JobPolicy):
    """One aggregation worker and a training worker per ``trainingWorkers`` entry."""

    kind: ClassVar[str] = FederatedLearningJob.KIND
    has_phase: ClassVar[bool] = True

    def finished(self, status: Status) -> bool:
        """Over once the aggregation worker has succeeded or failed."""
        return status.get("phase") in TERMINAL

    def ports(self, job: Any) -> tuple[str, ...]:
        """The aggregation worker listens for the training workers' updates."""
        return ("aggregation",)

    def plan(
        self, job: Any, owner: OwnerReference, ctx: PlanContext, status: Status
    ) -> list[DesiredWorker]:
        """One aggregation worker and one training worker per entry of ``trainingWorkers``."""
        fl: FederatedLearningJob = job
        name = fl.metadata.name
        agg = fl.spec.aggregation_worker
        agg_node = plan.node_of(agg.template, "spec.aggregationWorker")
        port = str(plan.need(ctx.ports, "aggregation", "port for"))
        common = {
            "PARTICIPANTS_COUNT": str(len(fl.spec.training_workers)),
            "SEDNA_JOB_TOKEN": ctx.job_token,
        }
        model_url = plan.need(ctx.model_urls, agg.model.name, "model")
        pretrained = fl.spec.pretrained_model
        base_model = (
            {"BASE_MODEL_URL": plan.need(ctx.model_urls, pretrained.name, "model")}
            if pretrained is not None
            else {}
        )
        agg_address = ctx.node_address(agg_node)
        workers = [
            plan.desired_worker(
                fl,
                owner,
                role="aggregation",
                name=f"{name}-aggregation",
                node=agg_node,
                template=agg.template,
                env={
                    **common,
                    # Where it listens: its node's address, the one the trainers reach.
                    "AGG_BIND_IP": agg_address,
                    "AGG_BIND_PORT": port,
                    "MODEL_URL": model_url,
                    **base_model,
                },
            )
        ]
        for index, trainer in enumerate(fl.spec.training_workers):
            dataset_url = plan.need(ctx.dataset_urls, trainer.dataset.name, "dataset")
            workers.append(
                plan.desired_worker(
                    fl,
                    owner,
                    role="training",
                    name=f"{name}-training-{index}",
                    node=plan.node_of(trainer.template, f"spec.trainingWorkers[{index}]"),
                    template=trainer.template,
                    env={
                        **common,
                        "AGG_IP": agg_address,
                        "AGG_PORT": port,
                        "TRAIN_DATASET_URL": dataset_url,
                        # As upstream: each trainer saves the global model with its estimator.
                        "MODEL_URL": model_url,
                        "MODEL_NAME": agg.model.name,
                    },
                )
            )
        return workers

    def fold_progress(self, status: Status, role: str | None, output: WorkerOutput) -> None:
        """The aggregator's rounds, aggregations and nodes; the model the training workers
        save (their estimator's own file at the Model's URL)."""
        if role == "training" and output.models:
            status["outputModel"] = output.models[-1].url
        if role != "aggregation":
            return
        progress = output.progress()
        for key in ("currentRound", "aggregationCount"):
            if isinstance(progress.get(key), int):
                status[key] = progress[key]
        nodes = progress.get("nodes")
        if isinstance(nodes, list):
            status["nodes"] = [n for n in nodes if isinstance(n, dict) and n.get("nodeName")]
        if output.models:
            status["outputModel"] = output.models[-1].url

    def input_statuses(self, job: Any, status: Status) -> list[tuple[str, str, Status]]:
        """The aggregation worker's Model: when a training worker reported a new version, its
        time and the job's model metrics (upstream updates that Model every round)."""
        times = [
            w["lastUpdateTime"]
            for w in status.get("workers") or []
            if w.get("role") == "training" and w.get("lastUpdateTime")
        ]
        if not status.get("outputModel") or not times:
            return []
        fl: FederatedLearningJob = job
        fields: Status = {"updateTime": max(times)}
        if status.get("metrics"):
            fields["metrics"] = status["metrics"]
        return [(Model.KIND, fl.spec.aggregation_worker.model.name, fields)]

    def derive(
        self, status: Status, workers: Sequence[WorkerStatus], expected: int, stamp: str
    ) -> Status:
        """See :func:`federated_learning_status`."""
        return federated_learning_status(status, workers, expected, stamp)

    def series(self) -> tuple[JobSeries, ...]:
        """Round, aggregations and samples per node."""
        return (
            JobSeries(
                "sedna_federated_current_round", "Latest aggregated round of a federated job"
            ),
            JobSeries("sedna_federated_aggregations", "Aggregations a federated job has done"),
            JobSeries(
                "sedna_federated_node_samples",
                "Samples a node trained on in the latest round it took part in",
                ("node",),
            ),
        )

    def samples(self, status: Status) -> Iterable[Sample]:
        """The series above from ``currentRound``, ``aggregationCount`` and ``nodes``."""
        if isinstance(status.get("currentRound"), int):
            yield "sedna_federated_current_round", (), status["currentRound"]
        if isinstance(status.get("aggregationCount"), int):
            yield "sedna_federated_aggregations", (), status["aggregationCount"]
        for node in status.get("nodes") or []:
            if isinstance(node.get("numberOfSamples"), int) and node.get("nodeName"):
                yield "sedna_federated_node_samples", (node["nodeName"],), node["numberOfSamples"]
