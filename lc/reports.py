"""Worker reports: the ``info`` body a worker POSTs to its LC (seed 001), parsed once here."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from lc.errors import InvalidReport, describe_validation_error, first_error_field

REPORT_STATUSES = ("running", "completed", "failed")


class ReportModel(BaseModel):
    """A model a worker produced: where it is, its format and metrics (precision, recall...)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    format: str | None = None
    url: str
    # Numbers (precision, recall...) in the design; other JSON values pass through untouched.
    metrics: dict[str, Any] = Field(default_factory=dict)

    @field_validator("metrics", mode="before")
    @classmethod
    def _metrics_from_pairs(cls, value: Any) -> Any:
        # Lists of {"key", "value"} pairs (the form of status.metrics) are accepted too.
        if isinstance(value, list):
            return {str(item.get("key")): item.get("value") for item in value}
        return value if value is not None else {}


class TaskInfo(BaseModel):
    """Progress of a task: inference counts (joint inference) or the round (federated)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    inference_number: int | None = Field(default=None, alias="inferenceNumber", ge=0)
    hard_example_number: int | None = Field(default=None, alias="hardExampleNumber", ge=0)
    upload_cloud_ratio: float | None = Field(default=None, alias="uploadCloudRatio", ge=0, le=1)
    current_round: int | None = Field(default=None, alias="currentRound", ge=0)
    start_time: str | None = Field(default=None, alias="startTime")
    update_time: str | None = Field(default=None, alias="updateTime")


class WorkerReport(BaseModel):
    """The body of ``POST /sedna/workers/<worker>/info`` (legacy ``/neptune/...``).

    ``results`` (the name Sedna's worker library uses) is accepted for ``models``.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str = Field(min_length=1)
    namespace: str = Field(default="default", min_length=1)
    owner_name: str = Field(alias="ownerName", min_length=1)
    owner_kind: str = Field(alias="ownerKind", min_length=1)
    kind: str | None = None
    status: str
    task_info: TaskInfo | None = Field(default=None, alias="taskInfo")
    models: list[ReportModel] = Field(
        default_factory=list, validation_alias=AliasChoices("models", "results")
    )
    owner_info: dict[str, Any] | None = Field(default=None, alias="ownerInfo")

    @field_validator("status")
    @classmethod
    def _known_status(cls, value: str) -> str:
        lowered = value.strip().lower()
        if lowered not in REPORT_STATUSES:
            raise ValueError(f"must be one of {', '.join(REPORT_STATUSES)}, not {value!r}")
        return lowered

    @field_validator("models", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value


def parse_report(data: Any, worker: str | None = None) -> WorkerReport:
    """Validate a report body; ``worker`` (from the URL) fills or must match ``name``.

    Raises :class:`InvalidReport` naming the bad field.
    """
    if not isinstance(data, dict):
        raise InvalidReport("the body must be a JSON object", field=None)
    if worker is not None:
        if data.get("name") in (None, ""):
            data = {**data, "name": worker}
        elif data["name"] != worker:
            raise InvalidReport(
                f"name: {data['name']!r} does not match the worker {worker!r} in the path",
                field="name",
            )
    try:
        return WorkerReport.model_validate(data)
    except ValidationError as exc:
        raise InvalidReport(describe_validation_error(exc), field=first_error_field(exc)) from exc
