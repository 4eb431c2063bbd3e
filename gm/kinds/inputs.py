"""Model and Dataset: what jobs are planned from. A Dataset is also published to its node, whose
LC counts its samples; a Model only lends its URL to the jobs that name it."""

from __future__ import annotations

from datetime import UTC
from typing import Any, ClassVar

from apis import Dataset, Model
from gm.kinds.base import InputPolicy, Message, Status


class ModelPolicy(InputPolicy):
    """Nothing to run and nothing reported: jobs read ``spec.url``."""

    kind: ClassVar[str] = Model.KIND
    plan_field: ClassVar[str | None] = "model_urls"


class DatasetPolicy(InputPolicy):
    """Held by the LC of ``spec.nodeName``, which reports ``numberOfSamples``."""

    kind: ClassVar[str] = Dataset.KIND
    plan_field: ClassVar[str | None] = "dataset_urls"
    node_field: ClassVar[str | None] = "dataset_nodes"

    def nodes(self, obj: dict[str, Any]) -> list[str]:
        """The node named in ``spec.nodeName``."""
        node = (obj.get("spec") or {}).get("nodeName")
        return [node] if node else []

    def fold(self, status: Status, message: Message, role: str | None, stamp: str) -> Status:
        """The LC's latest count and when it was made."""
        if message.type != "dataset":
            return status
        when = (
            message.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if message.time else stamp
        )
        return {**status, "numberOfSamples": message.number_of_samples, "updateTime": when}
