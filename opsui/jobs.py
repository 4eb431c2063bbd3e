"""Jobs and their conditions, read from the API server (the objects ``kubectl get`` shows)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kubernetes import client
from pydantic import BaseModel, ValidationError

from apis import KINDS, KindInfo
from apis.kinds import WorkerStatus
from apis.stages import StagedCondition

#: The kinds the page lists: every served kind but the data kinds.
JOB_KINDS: tuple[KindInfo, ...] = tuple(k for k in KINDS if k.kind not in ("Dataset", "Model"))


class JobRef(BaseModel):
    """Which job: its kind's plural (unique, unlike a legacy kind's name), namespace, name;
    ``plural/namespace/name`` in the page's links."""

    plural: str
    namespace: str
    name: str

    @property
    def info(self) -> KindInfo:
        """The job's kind."""
        return next(k for k in JOB_KINDS if k.plural == self.plural)

    @property
    def key(self) -> str:
        """``plural/namespace/name``."""
        return f"{self.plural}/{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, key: str) -> JobRef:
        """The reference in ``plural/namespace/name``; ValueError naming what is wrong."""
        parts = key.split("/")
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"job {key!r}: expected plural/namespace/name")
        if parts[0] not in {k.plural for k in JOB_KINDS}:
            known = ", ".join(k.plural for k in JOB_KINDS)
            raise ValueError(f"job {key!r}: {parts[0]!r} is not a job kind ({known})")
        return cls(plural=parts[0], namespace=parts[1], name=parts[2])


def condition_time(condition: StagedCondition) -> datetime | None:
    """When a condition happened: its transition, else its heartbeat or probe time."""
    return (
        condition.last_transition_time or condition.last_heartbeat_time or condition.last_probe_time
    )


def condition_label(condition: StagedCondition) -> str:
    """What the job was in: ``Train/Running`` for a staged job, else the type."""
    return f"{condition.stage.value}/{condition.type}" if condition.stage else condition.type


class Job(BaseModel):
    """A job as the API server has it."""

    ref: JobRef
    phase: str
    stage: str | None
    workers: list[WorkerStatus]
    conditions: list[StagedCondition]
    created: datetime | None = None


def _conditions(status: dict[str, Any]) -> list[StagedCondition]:
    """The condition history (a staged job's entries carry their stage and round)."""
    out = []
    for raw in status.get("conditions") or []:
        try:
            out.append(StagedCondition.model_validate(raw))
        except ValidationError:
            continue
    return out


def _phase(status: dict[str, Any], conditions: list[StagedCondition]) -> str:
    """``status.phase``, else a staged job's ``state``, else the latest condition's type."""
    for key in ("phase", "state"):
        if isinstance(status.get(key), str) and status[key]:
            return status[key]
    return conditions[-1].type if conditions else "Pending"


def job_from_object(info: KindInfo, obj: dict[str, Any]) -> Job:
    """The page's view of one API object."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    conditions = _conditions(status)
    workers = []
    for raw in status.get("workers") or []:
        try:
            workers.append(WorkerStatus.model_validate(raw))
        except ValidationError:
            continue
    created = meta.get("creationTimestamp")
    return Job(
        ref=JobRef(
            plural=info.plural, namespace=meta.get("namespace", "default"), name=meta["name"]
        ),
        phase=_phase(status, conditions),
        stage=status.get("stage") if isinstance(status.get("stage"), str) else None,
        workers=workers,
        conditions=conditions,
        created=datetime.fromisoformat(created.replace("Z", "+00:00")) if created else None,
    )


class JobReader:
    """Lists the jobs of every job kind from the API server."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self._api = client.CustomObjectsApi(api_client)

    def jobs(self) -> list[Job]:
        """Every job, sorted by kind, namespace and name."""
        found = []
        for info in JOB_KINDS:
            reply = self._api.list_cluster_custom_object(info.group, info.version, info.plural)
            found.extend(job_from_object(info, obj) for obj in reply.get("items") or [])
        return sorted(found, key=lambda j: (j.ref.plural, j.ref.namespace, j.ref.name))

    def job(self, ref: JobRef) -> Job | None:
        """One job, or None when there is no such job."""
        info = ref.info
        try:
            obj = self._api.get_namespaced_custom_object(
                info.group, info.version, ref.namespace, info.plural, ref.name
            )
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return job_from_object(info, obj)
