"""JointInferenceService: an edge worker mining hard examples and a cloud worker answering them.

Legacy ``neptune.io`` services reach this policy converted (``apis.to_canonical``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from apis import JointInferenceService, OwnerReference, WorkerOutput, WorkerStatus
from gm import plan
from gm import status as rules
from gm.kinds.base import JobPolicy, Status
from gm.plan import DesiredWorker, PlanContext
from gm.reports import merge_metrics

# Progress keys of the edge worker that go into status.metrics (seed 001).
METRIC_KEYS = (
    "inferenceNumber",
    "hardExampleNumber",
    "uploadCloudRatio",
    "startTime",
    "updateTime",
    "cloudFailures",
)


def joint_inference_status(
    previous: Status, workers: Sequence[WorkerStatus], expected: int, timestamp: str
) -> Status:
    """Pending until every worker runs, Running while they do, Failed when one has failed.

    A worker that finished successfully (an edge stream that reached the end of its input)
    still counts as up: the service keeps Running while the others serve.
    """
    active = rules.count(workers, "Running")
    failed = rules.count(workers, "Failed")
    succeeded = rules.count(workers, "Succeeded")
    if failed:
        names = ", ".join(w.name for w in workers if w.phase == "Failed")
        ctype, reason, message = "Failed", "WorkerFailed", f"failed workers: {names}"
    elif active and active + succeeded == expected:
        ctype, reason, message = "Running", "WorkersRunning", f"{active} workers running"
    else:
        ctype, reason, message = "Pending", "WorkersStarting", f"{active}/{expected} running"
    status = dict(previous)
    status["conditions"] = rules.with_condition(
        previous.get("conditions") or [], ctype, reason, message, timestamp
    )
    status.setdefault("startTime", timestamp)
    status["active"] = active
    status["failed"] = failed
    return status


class JointInferencePolicy(JobPolicy):
    """Two long-running workers; the edge worker's counters become ``status.metrics``."""

    kind: ClassVar[str] = JointInferenceService.KIND

    def ports(self, job: Any) -> tuple[str, ...]:
        """The cloud worker listens for the edge worker's hard examples."""
        return ("cloud",)

    def plan(
        self, job: Any, owner: OwnerReference, ctx: PlanContext, status: Status
    ) -> list[DesiredWorker]:
        """A cloud worker serving the big model and an edge worker mining hard examples."""
        svc: JointInferenceService = job
        edge, cloud = svc.spec.edge_worker, svc.spec.cloud_worker
        cloud_node = plan.node_of(cloud.template, "spec.cloudWorker")
        edge_node = plan.node_of(edge.template, "spec.edgeWorker")
        port = str(plan.need(ctx.ports, "cloud", "port for"))
        name = svc.metadata.name
        cloud_env = {
            "MODEL_URL": plan.need(ctx.model_urls, cloud.model.name, "model"),
            "BIG_MODEL_BIND_PORT": port,
        }
        edge_env = {
            "MODEL_URL": plan.need(ctx.model_urls, edge.model.name, "model"),
            "BIG_MODEL_IP": ctx.node_address(cloud_node),
            "BIG_MODEL_PORT": port,
            **plan.hem_env(edge.hard_example_mining),
        }
        sides = (
            ("cloud", cloud_node, cloud.template, cloud_env),
            ("edge", edge_node, edge.template, edge_env),
        )
        return [
            plan.desired_worker(
                svc,
                owner,
                role=role,
                name=f"{name}-{role}",
                node=node,
                template=template,
                env=env,
                restart_policy="Always",
            )
            for role, node, template, env in sides
        ]

    def fold_progress(self, status: Status, role: str | None, output: WorkerOutput) -> None:
        """The edge worker's counters (``taskInfo`` or ``ownerInfo``) go to ``status.metrics``."""
        if role != "edge":
            return
        progress = output.progress()
        merge_metrics(status, {key: progress[key] for key in METRIC_KEYS if key in progress})

    def derive(
        self, status: Status, workers: Sequence[WorkerStatus], expected: int, stamp: str
    ) -> Status:
        """See :func:`joint_inference_status`."""
        return joint_inference_status(status, workers, expected, stamp)
