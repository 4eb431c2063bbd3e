"""What travels upstream from LCs to the GM (the payload of a bus envelope).

Field names follow the design documents' ``WorkerMessage`` (``phase``, ``status``,
``output{models, taskInfo, ownerInfo}``) of seeds 000 and 002. The worker's own ``info`` report
to its LC (seed 001) is parsed by the LC (``lc.reports``) and carried here as ``output``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from apis.base import ApiModel


class OutputModel(ApiModel):
    """A model a worker produced: where it is, its format and its metrics."""

    format: str | None = None
    url: str
    metrics: dict[str, float] | None = None


class WorkerOutput(ApiModel):
    """What a worker produced: models, task progress (free form), owner information."""

    models: list[OutputModel] | None = None
    task_info: dict[str, Any] | None = None
    owner_info: dict[str, Any] | None = None


WorkerPhase = Literal["Pending", "Running", "Succeeded", "Failed"]


class WorkerMessage(ApiModel):
    """One upstream message about a worker of a resource.

    ``phase`` comes from the LC's process runtime (the worker process's lifecycle);
    ``status`` and ``output`` from the worker's own reports.
    """

    type: Literal["worker"] = "worker"
    worker: str
    owner_api_version: str | None = Field(
        default=None, description="apiVersion of the owning resource (its group may be legacy)"
    )
    node: str | None = None
    phase: WorkerPhase | None = None
    exit_code: int | None = None
    restart_count: int | None = None
    status: str | None = None
    output: WorkerOutput | None = None
    time: datetime | None = None


class DatasetMessage(ApiModel):
    """The LC's count of a dataset's samples on its node."""

    type: Literal["dataset"] = "dataset"
    number_of_samples: int = Field(ge=0)
    message: str | None = None
    time: datetime | None = None


UpstreamMessage = WorkerMessage | DatasetMessage
