"""Status building blocks shared by every kind: time stamps, counts, the condition history.

Conditions are an append-only history: a new entry is appended only when the state changes;
otherwise the last entry's heartbeat is refreshed. Each kind's rules are in ``gm.kinds``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from apis import WorkerStatus

Status = dict[str, Any]
MAX_CONDITIONS = 20


def now() -> str:
    """The current time in RFC 3339 (UTC, seconds)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def count(workers: Sequence[WorkerStatus], phase: str, role: str | None = None) -> int:
    """How many ``workers`` (of ``role``, if given) are in ``phase``."""
    return sum(1 for w in workers if w.phase == phase and (role is None or w.role == role))


def with_condition(
    previous: list[dict[str, Any]],
    ctype: str,
    reason: str,
    message: str,
    timestamp: str,
    heartbeat_field: str = "lastHeartbeatTime",
) -> list[dict[str, Any]]:
    """``previous`` with a ``ctype``/``reason`` condition appended, or its heartbeat refreshed."""
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


def with_pending(status: Status, reason: str, message: str, timestamp: str) -> Status:
    """``status`` with a ``Pending`` condition saying why the job cannot go on (once per reason)."""
    status = dict(status)
    conditions = [dict(c) for c in status.get("conditions") or []]
    last = conditions[-1] if conditions else {}
    if last.get("reason") != reason or last.get("message") != message:
        conditions.append(
            {
                "type": "Pending",
                "status": "True",
                "lastTransitionTime": timestamp,
                "reason": reason,
                "message": message,
            }
        )
    status["conditions"] = conditions[-MAX_CONDITIONS:]
    return status
