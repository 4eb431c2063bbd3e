"""The knowledge base's request and answer bodies, parsed once at the HTTP edge.

The task index is upstream Sedna's ``index.pkl`` as JSON data: ``seen_task`` and
``unseen_task`` each hold task groups (one model each) made of tasks (attribute values and the
samples they were learnt from), plus how samples are allocated to tasks (``extractor``) and
how unseen samples are told apart (``detector``), both as plain JSON.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: A knowledge base key: one per job (``<namespace>/<name>``), ``default`` when not given.
KB_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,252}$"
DEFAULT_KB = "default"

SampleKind = Literal["train", "eval", "hard"]
#: Upstream's ``ll_samples.data_type`` codes.
SAMPLE_KIND_CODES: dict[str, int] = {"train": 0, "eval": 1, "hard": 2}


class _Body(BaseModel):
    # Unknown fields are kept: the stored index is returned as it was posted.
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class SampleSet(_Body):
    """Samples a task was trained or evaluated on (``ll_samples``)."""

    data_url: str = ""
    data_type: SampleKind = "train"
    sample_num: int = Field(default=0, ge=0)
    descr: str = ""


class ModelRef(_Body):
    """Where a task group's model is and how well it did."""

    url: str = Field(min_length=1)
    format: str = "pkl"
    metrics: dict[str, float | list[float]] = Field(default_factory=dict)


class TaskEntry(_Body):
    """One task: its name, attribute values and samples (``ll_tasks``)."""

    entry: str = Field(min_length=1, max_length=253)
    meta_attr: list[str | int | float | bool | None] = Field(default_factory=list)
    samples: SampleSet | None = None
    test_samples: SampleSet | None = None
    scores: dict[str, float] = Field(default_factory=dict)


class TaskGroupEntry(_Body):
    """Tasks that share one model (``ll_task_grp``); deployable or not."""

    entry: str = Field(min_length=1, max_length=253)
    tasks: list[TaskEntry] = Field(min_length=1)
    model: ModelRef | None = None
    sample_num: int = Field(default=0, ge=0)
    deploy: bool = True
    scores: dict[str, float] = Field(default_factory=dict)


class TaskSide(_Body):
    """Either side of the index: seen or unseen tasks."""

    task_groups: list[TaskGroupEntry] = Field(default_factory=list)
    extractor: dict[str, Any] | str | None = None
    detector: dict[str, Any] | None = None

    @field_validator("task_groups")
    @classmethod
    def _unique_entries(cls, groups: list[TaskGroupEntry]) -> list[TaskGroupEntry]:
        seen: set[str] = set()
        for group in groups:
            if group.entry in seen:
                raise ValueError(f"task group {group.entry!r} appears twice")
            seen.add(group.entry)
        return groups


class KBIndex(_Body):
    """The task index a train or eval worker posts to ``/knowledgebase/update``."""

    kb: str = Field(default=DEFAULT_KB, pattern=KB_KEY_PATTERN)
    create_time: str = Field(min_length=1)
    seen_task: TaskSide = Field(default_factory=TaskSide)
    unseen_task: TaskSide = Field(default_factory=TaskSide)
    classes: list[str] = Field(default_factory=list)
    number_of_labeled_unseen_sample: int = Field(default=0, ge=0)
    number_of_unseen_sample: int = Field(default=0, ge=0)


class StatusUpdate(BaseModel):
    """``/knowledgebase/update/status``: deploy (1) or withdraw (0) the named tasks."""

    model_config = ConfigDict(extra="forbid")

    kb: str = Field(default=DEFAULT_KB, pattern=KB_KEY_PATTERN)
    tasks: str = Field(min_length=1, description="comma-separated task or task group names")
    status: Literal[0, 1]

    def names(self) -> list[str]:
        """The task names, trimmed, empty ones dropped."""
        return [name.strip() for name in self.tasks.split(",") if name.strip()]


class KBQuery(BaseModel):
    """``/knowledgebase/query``: which knowledge base to describe."""

    model_config = ConfigDict(extra="forbid")

    kb: str = Field(default=DEFAULT_KB, pattern=KB_KEY_PATTERN)


_METRIC_NAME = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"


class MetricDefinition(BaseModel):
    """A row of seed 004's ``metric`` table: a custom gauge and its label names."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=_METRIC_NAME, max_length=200)
    label: str = Field(default="", description="comma-separated label names")
    note: str = ""

    @field_validator("name")
    @classmethod
    def _not_builtin(cls, value: str) -> str:
        if value.startswith("sedna_"):
            raise ValueError("names starting with sedna_ are reserved for built-in series")
        return value

    @field_validator("label")
    @classmethod
    def _label_names(cls, value: str) -> str:
        names = [name.strip() for name in value.split(",") if name.strip()]
        for name in names:
            if not name.replace("_", "a").isalnum() or name[0].isdigit() or name.startswith("__"):
                raise ValueError(f"{name!r} is not a Prometheus label name")
        if len(set(names)) != len(names):
            raise ValueError("label names repeat")
        return ",".join(names)

    def label_names(self) -> list[str]:
        """The label names in order."""
        return [name for name in self.label.split(",") if name]


class MetricValue(BaseModel):
    """A row of seed 004's ``metric_value`` table: one labelled value of a custom metric."""

    model_config = ConfigDict(extra="forbid")

    metric: str = Field(pattern=_METRIC_NAME, description="name of a registered metric")
    label_value: str = Field(default="", description="comma-separated label values")
    value: float

    def label_values(self) -> list[str]:
        """The label values in order."""
        return [value.strip() for value in self.label_value.split(",")] if self.label_value else []


class AIModel(BaseModel):
    """One entry of ``status.knowledgeBase.AIModels.listOfAIModels``."""

    modelID: str
    averagePrecision: float
    numberOfTrainSamples: int


class KBSummary(BaseModel):
    """What a job's knowledge base holds, in the shape of ``status.knowledgeBase``."""

    AIModels: dict[str, Any]
    AIClasses: dict[str, Any]
    samples: dict[str, int]

    @classmethod
    def build(
        cls,
        models: list[AIModel],
        classes: list[str],
        labeled_unseen: int = 0,
        unseen: int = 0,
    ) -> KBSummary:
        """The summary from its parts."""
        return cls(
            AIModels={
                "numberOfAIModels": len(models),
                "listOfAIModels": [m.model_dump() for m in models],
            },
            AIClasses={"numberOfAIClasses": len(classes), "listOfAIClasses": classes},
            samples={"numberOfLabeledUnseenSample": labeled_unseen, "numberOfUnseenSample": unseen},
        )
