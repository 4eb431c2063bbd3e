"""The task index: what lifelong learning knows, as JSON data (upstream pickles it).

The same document goes to the knowledge base (``/knowledgebase/update``), to ``OUTPUT_URL/
index.json`` of each train and eval round, and to the inference worker (``MODEL_URLS``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sedna.common.errors import ConfigError

INDEX_FILE = "index.json"


class _Doc(BaseModel):
    model_config = ConfigDict(extra="allow")


class SampleInfo(_Doc):
    """Where a task's samples came from and how many."""

    data_url: str = ""
    data_type: str = "train"
    sample_num: int = 0


class ModelInfo(_Doc):
    """A task group's model file."""

    url: str
    format: str = "pkl"
    metrics: dict[str, float] = Field(default_factory=dict)


class TaskInfo(_Doc):
    """A task: name, attribute values, samples."""

    entry: str
    meta_attr: list[Any] = Field(default_factory=list)
    samples: SampleInfo | None = None
    test_samples: SampleInfo | None = None
    scores: dict[str, float] = Field(default_factory=dict)


class GroupInfo(_Doc):
    """A task group: its tasks, model, scores, deploy flag and reference samples."""

    entry: str
    tasks: list[TaskInfo]
    model: ModelInfo | None = None
    sample_num: int = 0
    deploy: bool = True
    scores: dict[str, float] = Field(default_factory=dict)
    #: ``.npy`` file of the training features (for distance-based unseen detection).
    reference: str | None = None


class SideInfo(_Doc):
    """Seen or unseen tasks."""

    task_groups: list[GroupInfo] = Field(default_factory=list)
    extractor: dict[str, Any] | None = None
    detector: dict[str, Any] | None = None

    def group(self, entry: str) -> GroupInfo | None:
        """The group named ``entry``, if any."""
        return next((g for g in self.task_groups if g.entry == entry), None)


class KnowledgeIndex(_Doc):
    """The whole index."""

    kb: str = "default"
    create_time: str = Field(default_factory=lambda: f"{time.time():.6f}")
    seen_task: SideInfo = Field(default_factory=SideInfo)
    unseen_task: SideInfo = Field(default_factory=SideInfo)
    classes: list[str] = Field(default_factory=list)
    number_of_labeled_unseen_sample: int = 0
    number_of_unseen_sample: int = 0

    def deployed(self) -> set[str]:
        """Entries of the seen groups flagged for deployment that have a model."""
        return {g.entry for g in self.seen_task.task_groups if g.deploy and g.model}

    def save(self, directory: str | Path) -> str:
        """Write ``directory/index.json`` atomically; returns its path."""
        path = Path(directory) / INDEX_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{INDEX_FILE}.{os.getpid()}.part")
        partial.write_text(self.model_dump_json(indent=1))
        partial.replace(path)
        return str(path)

    @classmethod
    def load(cls, path: str | Path) -> KnowledgeIndex:
        """Read an index file (a directory means its ``index.json``)."""
        target = Path(path)
        if target.is_dir():
            target = target / INDEX_FILE
        try:
            return cls.parse(target.read_bytes(), str(target))
        except OSError as exc:
            raise ConfigError(f"cannot read the task index {target}: {exc}") from None

    @classmethod
    def parse(cls, raw: bytes, where: str) -> KnowledgeIndex:
        """Parse index JSON; a pickle or malformed document is a :class:`ConfigError`."""
        if raw[:1] == b"\x80":
            raise ConfigError(f"{where} is a pickled index; only JSON indexes are read")
        try:
            return cls.model_validate(json.loads(raw))
        except (ValueError, ValidationError) as exc:
            raise ConfigError(f"{where} is not a task index: {exc}") from None
