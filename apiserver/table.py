"""`meta.k8s.io/v1 Table` rendering for `kubectl get` (`Accept: ...;as=Table`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from apiserver.resources import Column, ResourceType

NAME_COLUMN = Column(
    name="Name",
    type="string",
    format="name",
    description=(
        "Name must be unique within a namespace. Is required when creating resources, although "
        "some resources may allow a client to request the generation of an appropriate name "
        "automatically. Name is primarily intended for creation idempotence and configuration "
        "definition. Cannot be updated. More info: "
        "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
    ),
)


def parse_time(text: Any) -> datetime | None:
    """Parse an RFC 3339 timestamp; None when absent or malformed."""
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def human_duration(seconds: float) -> str:
    """A duration as kubectl's AGE column shows it (`5s`, `3m20s`, `4h`, `2d3h`, `3y`)."""
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


def age(timestamp: Any, now: datetime | None = None) -> str | None:
    """Relative age of an RFC 3339 timestamp, or None when there is none."""
    moment = parse_time(timestamp)
    if moment is None:
        return None
    now = now or datetime.now(UTC)
    return human_duration((now - moment).total_seconds())


def render_cell(column: Column, obj: dict[str, Any], now: datetime) -> Any:
    """The cell value of one column for one object, typed as the column says."""
    try:
        value = column.raw_value(obj)
    except Exception:  # a bad JSONPath in a user CRD must not break listing
        return None
    if value is None:
        return None
    if column.compute is not None:
        return value
    if column.type == "date":
        return age(value, now)
    if column.type == "integer":
        return value if isinstance(value, int) and not isinstance(value, bool) else _text(value)
    if column.type == "number":
        return (
            value
            if isinstance(value, int | float) and not isinstance(value, bool)
            else _text(value)
        )
    if column.type == "boolean":
        return value if isinstance(value, bool) else _text(value)
    return _text(value)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def columns_for(rt: ResourceType, version: str) -> tuple[Column, ...]:
    """All columns of a version: `Name` first, then the type's printer columns."""
    return (NAME_COLUMN, *rt.version_columns(version))


def row(
    rt: ResourceType, version: str, obj: dict[str, Any], include_object: str, now: datetime
) -> dict[str, Any]:
    """One `rows[]` entry: the cells plus the object (`Metadata` by default)."""
    cells = []
    for column in columns_for(rt, version):
        if column is NAME_COLUMN:
            cells.append((obj.get("metadata") or {}).get("name"))
        else:
            cells.append(render_cell(column, obj, now))
    entry: dict[str, Any] = {"cells": cells}
    if include_object == "Object":
        entry["object"] = obj
    elif include_object != "None":
        entry["object"] = {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata") or {},
        }
    return entry


def table(
    rt: ResourceType,
    version: str,
    objects: Sequence[dict[str, Any]],
    *,
    include_object: str = "Metadata",
    list_metadata: dict[str, Any] | None = None,
    with_columns: bool = True,
) -> dict[str, Any]:
    """A `Table` of `objects`; `with_columns=False` leaves `columnDefinitions` null (watch)."""
    now = datetime.now(UTC)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_metadata or {},
        "columnDefinitions": (
            [c.definition() for c in columns_for(rt, version)] if with_columns else None
        ),
        "rows": [row(rt, version, obj, include_object, now) for obj in objects],
    }
