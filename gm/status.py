"""A resource's status as a pure function of its spec, its workers and its previous status.

Conditions are an append-only history: a new entry is appended only when the state changes;
otherwise the last entry's heartbeat is refreshed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from apis.kinds import WorkerStatus

Status = dict[str, Any]
MAX_CONDITIONS = 20


def now() -> str:
    """The current time in RFC 3339 (UTC, seconds)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _count(workers: Sequence[WorkerStatus], phase: str, role: str | None = None) -> int:
    return sum(1 for w in workers if w.phase == phase and (role is None or w.role == role))


def _with_condition(
    previous: list[dict[str, Any]],
    ctype: str,
    reason: str,
    message: str,
    timestamp: str,
    heartbeat_field: str = "lastHeartbeatTime",
) -> list[dict[str, Any]]:
    conditions = [dict(c) for c in previous]
    last = conditions[-1] if conditions else None
    if last and last.get("type") == ctype and last.get("reason") == reason:
        last[heartbeat_field] = timestamp
        last["message"] = message
        return conditions
    conditions.append(
        {
            "type": ctype,
            "status": "True",
            heartbeat_field: timestamp,
            "lastTransitionTime": timestamp,
            "reason": reason,
            "message": message,
        }
    )
    return conditions[-MAX_CONDITIONS:]


def joint_inference_status(
    previous: Status, workers: Sequence[WorkerStatus], expected: int, timestamp: str
) -> Status:
    """Pending until every worker runs, Running while they do, Failed when one has failed.

    A worker that finished successfully (an edge stream that reached the end of its input)
    still counts as up: the service keeps Running while the others serve.
    """
    active = _count(workers, "Running")
    failed = _count(workers, "Failed")
    succeeded = _count(workers, "Succeeded")
    if failed:
        names = ", ".join(w.name for w in workers if w.phase == "Failed")
        ctype, reason, message = "Failed", "WorkerFailed", f"failed workers: {names}"
    elif active and active + succeeded == expected:
        ctype, reason, message = "Running", "WorkersRunning", f"{active} workers running"
    else:
        ctype, reason, message = "Pending", "WorkersStarting", f"{active}/{expected} running"
    status = dict(previous)
    status["conditions"] = _with_condition(
        previous.get("conditions") or [], ctype, reason, message, timestamp
    )
    status.setdefault("startTime", timestamp)
    status["active"] = active
    status["failed"] = failed
    return status


def federated_learning_status(
    previous: Status, workers: Sequence[WorkerStatus], expected: int, timestamp: str
) -> Status:
    """The job's phase follows its aggregation worker, which decides when training ends.

    A training worker that fails is counted but does not fail the job: the aggregator goes on
    with the others as long as enough of them remain.
    """
    aggregation = next((w for w in workers if w.role == "aggregation"), None)
    active = _count(workers, "Running")
    succeeded = _count(workers, "Succeeded")
    failed = _count(workers, "Failed")
    status = dict(previous)
    if previous.get("phase") in ("Succeeded", "Failed"):
        phase = previous["phase"]
    elif aggregation is not None and aggregation.phase == "Succeeded":
        phase = "Succeeded"
    elif aggregation is not None and aggregation.phase == "Failed":
        phase = "Failed"
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
    status["conditions"] = _with_condition(
        previous.get("conditions") or [], ctype, reason, message, timestamp, "lastProbeTime"
    )
    status.setdefault("startTime", timestamp)
    if phase in ("Succeeded", "Failed"):
        status.setdefault("completionTime", timestamp)
    status.update(phase=phase, active=active, succeeded=succeeded, failed=failed)
    return status


def same_status(a: Status, b: Status) -> bool:
    """Whether two statuses differ only in heartbeat times (no need to write)."""

    def strip(status: Status) -> Status:
        copy = dict(status)
        copy["conditions"] = [
            {k: v for k, v in c.items() if k not in ("lastHeartbeatTime", "lastProbeTime")}
            for c in status.get("conditions") or []
        ]
        return copy

    return strip(a) == strip(b)
