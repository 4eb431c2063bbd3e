"""How an upstream worker message changes a job's status, for every kind (pure functions).

What a kind adds (its progress fields, its metrics) is its policy's ``fold_progress`` in
``gm.kinds``.
"""

from __future__ import annotations

import json
from typing import Any

from apis import WorkerMessage

Status = dict[str, Any]


def upsert_worker(status: Status, message: WorkerMessage, timestamp: str) -> dict[str, Any]:
    """The ``status.workers`` entry of the message's worker, created or updated in place."""
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
