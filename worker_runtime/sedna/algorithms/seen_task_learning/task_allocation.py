"""Task allocation: which known task group each sample belongs to (``ClassType.STP``).

An allocation returns one group entry per sample, or ``None`` when the sample belongs to no
known task. Unknown attribute values are never routed to the first task (upstream does that).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sedna.algorithms.seen_task_learning.artifact import split_attributes
from sedna.common.class_factory import ClassFactory, ClassType
from sedna.datasources import BaseDataSource


@ClassFactory.register(ClassType.STP, alias="TaskAllocationByDataAttr")
class TaskAllocationByDataAttr:
    """Look the sample's attribute values up among the known tasks."""

    def __init__(self, task_extractor: dict[str, Any], **_: Any) -> None:
        self.attribute = list(task_extractor.get("attribute") or [])
        self._by_values = {
            tuple(values): entry for entry, values in task_extractor.get("values", {}).items()
        }

    def __call__(self, samples: BaseDataSource) -> tuple[np.ndarray, list[str | None] | None]:
        """``(features, entries)``; entries is ``None`` when the data lacks the attribute."""
        x, attrs = split_attributes(samples, self.attribute)
        if attrs is None:
            return x, None
        return x, [self._by_values.get(tuple(str(v) for v in row)) for row in attrs]


@ClassFactory.register(ClassType.STP, alias="TaskAllocationBySVC")
class TaskAllocationBySVC:
    """The nearest cluster centroid of :class:`TaskDefinitionBySVC`."""

    def __init__(self, task_extractor: dict[str, Any], **_: Any) -> None:
        centroids = task_extractor.get("centroids", {})
        self._entries = list(centroids)
        self._centroids = np.asarray([centroids[e] for e in self._entries], dtype=np.float64)

    def __call__(self, samples: BaseDataSource) -> tuple[np.ndarray, list[str | None] | None]:
        x, _ = split_attributes(samples, [])
        if not self._entries:
            return x, [None] * len(x)
        distances = ((x[:, None, :] - self._centroids[None, :, :]) ** 2).sum(axis=2)
        return x, [self._entries[k] for k in distances.argmin(axis=1)]


def allocation_for(extractor: dict[str, Any] | None) -> Any:
    """The allocation that matches how the index's tasks were defined."""
    method = (extractor or {}).get("method")
    if method == "TaskDefinitionBySVC":
        return TaskAllocationBySVC(extractor or {})
    return TaskAllocationByDataAttr(extractor or {})
