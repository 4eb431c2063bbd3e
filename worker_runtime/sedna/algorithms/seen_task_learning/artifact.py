"""What lifelong learning's algorithms pass around: tasks, task groups and attribute splits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sedna.common.errors import InvalidInputError
from sedna.datasources import BaseDataSource

AttrValue = str | int | float | bool | None


@dataclass
class Task:
    """One task: its name, its attribute values and the samples it holds."""

    entry: str
    samples: BaseDataSource
    meta_attr: list[AttrValue] = field(default_factory=list)


@dataclass
class TaskGroup:
    """Tasks that share one model."""

    entry: str
    tasks: list[Task]

    @property
    def samples(self) -> BaseDataSource:
        """The samples of every task of the group, concatenated."""
        return concat([t.samples for t in self.tasks])


def feature_names(data: BaseDataSource) -> list[str]:
    """Column names of ``data.x`` (a DataFrame from ``CSVDataParse``), else an empty list."""
    columns = getattr(data.x, "columns", None)
    if columns is not None:
        return [str(c) for c in columns]
    return list(getattr(data, "feature_names", None) or [])


def attribute_columns(data: BaseDataSource, attribute: list[str | int]) -> list[int] | None:
    """Positions of the attribute columns in ``data.x``; ``None`` when the data lacks them."""
    names = feature_names(data)
    columns = []
    for attr in attribute:
        if isinstance(attr, int):
            columns.append(attr)
        elif attr in names:
            columns.append(names.index(attr))
        else:
            return None
    return columns


def split_attributes(
    data: BaseDataSource, attribute: list[str | int]
) -> tuple[np.ndarray, list[tuple[AttrValue, ...]] | None]:
    """``(features, attribute tuples)``: ``x`` without the attribute columns, as numbers when
    possible, and each row's attribute values (``None`` when the data has no such columns)."""
    x = np.asarray(data.x, dtype=object)
    if x.ndim != 2:
        raise InvalidInputError(f"expected 2-D samples (rows of columns), got shape {x.shape}")
    columns = attribute_columns(data, attribute) if attribute else None
    if columns is None:
        return _numbers(x), None
    keep = [i for i in range(x.shape[1]) if i not in columns]
    attrs = [tuple(_scalar(row[i]) for i in columns) for row in x]
    return _numbers(x[:, keep]), attrs


def subset(data: BaseDataSource, rows: np.ndarray | list[int], x: np.ndarray) -> BaseDataSource:
    """A data source of ``x[rows]`` (features only) and the matching labels."""
    part = BaseDataSource(data_type=data.data_type)
    part.x = x[rows]
    part.y = None if data.y is None else np.asarray(data.y)[rows]
    return part


def concat(sources: list[BaseDataSource]) -> BaseDataSource:
    """One data source of several (same columns)."""
    merged = BaseDataSource(data_type=sources[0].data_type if sources else "train")
    if not sources:
        return merged
    merged.x = np.concatenate([np.asarray(s.x) for s in sources])
    labels = [s.y for s in sources]
    merged.y = None if any(y is None for y in labels) else np.concatenate(labels)
    return merged


def _scalar(value: Any) -> AttrValue:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str | bool | type(None)) else str(value)


def _numbers(x: np.ndarray) -> np.ndarray:
    try:
        return x.astype(np.float64)
    except (TypeError, ValueError):
        return x
