"""Task definition: how training samples are cut into tasks (``ClassType.STP``).

Each definition returns ``(tasks, extractor, samples)``; the extractor is JSON data that the
matching allocation uses at inference time to find a sample's task.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sedna.algorithms.seen_task_learning.artifact import (
    Task,
    TaskGroup,
    feature_names,
    split_attributes,
    subset,
)
from sedna.common.class_factory import ClassFactory, ClassType
from sedna.common.errors import ConfigError, InvalidInputError
from sedna.datasources import BaseDataSource


def _attribute_list(attribute: Any) -> list[str]:
    if isinstance(attribute, str):
        attribute = [a.strip() for a in attribute.split(",") if a.strip()]
    if not attribute:
        raise ConfigError("task definition by attribute needs attribute=[column, ...]")
    return list(attribute)


@ClassFactory.register(ClassType.STP, alias="TaskDefinitionByDataAttr")
class TaskDefinitionByDataAttr:
    """One task per distinct value tuple of the ``attribute`` columns (upstream's atcii pattern).

    The task is named after its values joined by ``_``; the columns are dropped from ``x``.
    """

    def __init__(self, attribute: list[str] | str = (), **_: Any) -> None:
        self.attribute = _attribute_list(attribute)

    def __call__(self, samples: BaseDataSource) -> tuple[list[Task], dict[str, Any], Any]:
        x, attrs = split_attributes(samples, self.attribute)
        if attrs is None:
            raise InvalidInputError(
                f"the training data has no column(s) {', '.join(self.attribute)} "
                f"(columns: {', '.join(feature_names(samples)) or 'unnamed'})"
            )
        tasks: dict[str, Task] = {}
        rows: dict[str, list[int]] = {}
        for i, values in enumerate(attrs):
            entry = "_".join(str(v) for v in values)
            rows.setdefault(entry, []).append(i)
            tasks.setdefault(entry, Task(entry, BaseDataSource(), list(values)))
        for entry, task in tasks.items():
            task.samples = subset(samples, rows[entry], x)
        extractor = {
            "method": "TaskDefinitionByDataAttr",
            "attribute": self.attribute,
            "values": {entry: [str(v) for v in t.meta_attr] for entry, t in tasks.items()},
        }
        return list(tasks.values()), extractor, samples


@ClassFactory.register(ClassType.STP, alias="TaskDefinitionBySVC")
class TaskDefinitionBySVC:
    """Attribute-free tasks: ``n_class`` clusters of the samples (agglomerative clustering).

    Upstream fits an SVC on the clusters and pickles it; here the extractor is the clusters'
    centroids (JSON data) and allocation picks the nearest one.
    """

    def __init__(self, n_class: int | str = 2, **_: Any) -> None:
        self.n_class = int(n_class)
        if self.n_class < 1:
            raise ConfigError(f"n_class must be at least 1, got {n_class}")

    def __call__(self, samples: BaseDataSource) -> tuple[list[Task], dict[str, Any], Any]:
        from sklearn.cluster import AgglomerativeClustering

        x, _ = split_attributes(samples, [])
        if x.dtype == object:
            raise InvalidInputError("TaskDefinitionBySVC needs numeric samples")
        labels = AgglomerativeClustering(n_clusters=self.n_class).fit_predict(x)
        tasks, centroids = [], {}
        for k in range(self.n_class):
            rows = np.flatnonzero(labels == k)
            entry = f"svc_{k}"
            tasks.append(Task(entry, subset(samples, rows, x), [entry]))
            centroids[entry] = x[rows].mean(axis=0).tolist()
        extractor = {"method": "TaskDefinitionBySVC", "centroids": centroids}
        return tasks, extractor, samples


@ClassFactory.register(ClassType.STP, alias="DefaultTaskRelationDiscover")
class DefaultTaskRelationDiscover:
    """One task group per task."""

    def __init__(self, **_: Any) -> None:
        pass

    def __call__(self, tasks: list[Task]) -> list[TaskGroup]:
        return [TaskGroup(task.entry, [task]) for task in tasks]
