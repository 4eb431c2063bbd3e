"""The one path that writes a resource's status: computed, compared, patched with its version.

A status is a function of the object as the informer caches it (spec and previous status), the
recorded upstream messages (``gm.records``), the planned workers and, with the ``pods`` backend,
the worker Pods. It is written with the cached ``resourceVersion`` (optimistic concurrency; a
409 requeues the key and the next attempt reads the newer cached object), never after a GET, and
the written object goes back into the cache so the next write need not wait for the watch (and
that version's watch event does not reconcile the object again).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from apis import KindInfo, WorkerStatus
from gm import status as rules
from gm.informer import Informer
from gm.kinds import JobPolicy, KindPolicy, Status
from gm.plan import DesiredWorker
from gm.pods import phases_from_pods
from gm.records import Recorded
from gm.statuspatch import StatusPatch


def folded(
    policy: KindPolicy, previous: Status, recorded: Sequence[Recorded], roles: dict
) -> Status:
    """``previous`` with every recorded message folded in (idempotent: folding again is a no-op)."""
    status = dict(previous)
    for subject, message, sent_at in recorded:
        status = policy.fold(status, message, roles.get(subject), sent_at)
    return status


def job_status(
    policy: JobPolicy,
    previous: Status,
    recorded: Sequence[Recorded],
    workers: Sequence[DesiredWorker],
    pods: list[dict[str, Any]] | None,
    stamp: str,
) -> Status:
    """A job's status from its previous status, its records, its plan and its Pods (if any)."""
    roles = {w.name: w.role for w in workers}
    status = folded(policy, previous, recorded, roles)
    if pods is not None:
        entries = {w["name"]: dict(w) for w in status.get("workers") or []}
        for name, observed in phases_from_pods(pods).items():
            entries[name] = {**entries.get(name, {}), **observed}
        status["workers"] = [entries[n] for n in sorted(entries)]
    observed = [
        WorkerStatus.model_validate(w) for w in status.get("workers") or [] if w["name"] in roles
    ]
    return policy.derive(status, observed, len(workers), stamp)


class StatusWriter:
    """Writes statuses of the kinds the GM serves, from and back into the informer caches."""

    def __init__(self, patch: StatusPatch, informers: dict[str, Informer]) -> None:
        self._patch = patch
        self._informers = informers

    def write(self, kid: str, info: KindInfo, obj: dict[str, Any], status: Status) -> bool:
        """Patch ``obj``'s status to ``status`` unless only heartbeats differ; ``True`` if written.

        Raises ``ApiException`` (409 when someone wrote first: the caller requeues).
        """
        if rules.same_status(obj.get("status") or {}, status):
            return False
        meta = obj["metadata"]
        body = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": status}
        updated = self._patch(info, meta.get("namespace", "default"), meta["name"], body)
        if isinstance(updated, dict) and updated.get("metadata"):
            # Cached at once; the watch event still reconciles again, since a status can be
            # a step of a sequence (a stage done -> the next stage's directive is published).
            self._informers[kid].observe(updated)
        return True
