"""How an upstream worker message changes a resource's status (pure functions)."""

from __future__ import annotations

import json
from typing import Any

from apis.messages import WorkerMessage

Status = dict[str, Any]

# taskInfo keys of a joint inference edge worker that go into status.metrics (seed 001).
JI_METRIC_KEYS = (
    "inferenceNumber",
    "hardExampleNumber",
    "uploadCloudRatio",
    "startTime",
    "updateTime",
    "cloudFailures",
)


def _upsert_worker(status: Status, message: WorkerMessage, timestamp: str) -> dict[str, Any]:
    workers = [dict(w) for w in status.get("workers") or []]
    entry = next((w for w in workers if w.get("name") == message.worker), None)
    if entry is None:
        entry = {"name": message.worker}
        workers.append(entry)
        workers.sort(key=lambda w: w["name"])
    if message.node:
        entry["nodeName"] = message.node
    for field, value in (
        ("phase", message.phase),
        ("status", message.status),
        ("restartCount", message.restart_count),
        ("exitCode", message.exit_code),
    ):
        if value is not None:
            entry[field] = value
    entry["lastUpdateTime"] = timestamp
    status["workers"] = workers
    return entry


def metric_text(value: Any) -> str:
    """A metric value as ``status.metrics[].value`` holds it: strings as they are, others JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def merge_metrics(status: Status, values: dict[str, Any]) -> None:
    """Upsert ``values`` into ``status.metrics`` (``[{key, value}]``, values as text)."""
    if not values:
        return
    metrics = {m["key"]: m["value"] for m in status.get("metrics") or []}
    metrics.update((key, metric_text(value)) for key, value in values.items())
    status["metrics"] = [{"key": k, "value": v} for k, v in metrics.items()]


def _joint_inference_metrics(status: Status, task_info: dict[str, Any]) -> None:
    merge_metrics(status, {key: task_info[key] for key in JI_METRIC_KEYS if key in task_info})


def _federated_progress(status: Status, task_info: dict[str, Any]) -> None:
    for key in ("currentRound", "aggregationCount"):
        if isinstance(task_info.get(key), int):
            status[key] = task_info[key]
    nodes = task_info.get("nodes")
    if isinstance(nodes, list):
        status["nodes"] = [n for n in nodes if isinstance(n, dict) and n.get("nodeName")]


def apply_worker_message(
    kind: str, status: Status, message: WorkerMessage, role: str | None, timestamp: str
) -> Status:
    """The status after ``message`` about one worker of a resource of ``kind``."""
    status = dict(status)
    entry = _upsert_worker(status, message, timestamp)
    if role:
        entry["role"] = role
    output = message.output
    task_info = output.progress() if output else {}
    for model in (output.models if output else None) or []:
        merge_metrics(status, model.metrics or {})
    if kind == "JointInferenceService" and role == "edge" and task_info:
        _joint_inference_metrics(status, task_info)
    if kind in ("FederatedLearningJob", "FederatedLearningTask") and role == "aggregation":
        if task_info:
            _federated_progress(status, task_info)
        if output and output.models:
            status["outputModel"] = output.models[-1].url
    return status
