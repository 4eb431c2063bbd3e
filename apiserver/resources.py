"""What the server knows about one resource type (built-in kind or custom resource)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from apiserver.errors import FieldError
from apiserver.jsonpath import evaluate, parse

Schema = dict[str, Any]

# The verbs of every resource, in the order the real server lists them for custom resources.
ALL_VERBS = ("delete", "deletecollection", "get", "list", "patch", "create", "update", "watch")
STATUS_VERBS = ("get", "patch", "update")


@dataclass(frozen=True)
class Column:
    """A Table column: its definition and how to compute a cell from an object."""

    name: str
    type: str
    json_path: str | None = None
    compute: Callable[[dict[str, Any]], Any] | None = None
    format: str = ""
    description: str = ""
    priority: int = 0

    def definition(self) -> dict[str, Any]:
        """The `columnDefinitions[]` entry."""
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }

    def raw_value(self, obj: dict[str, Any]) -> Any:
        """The value before rendering (JSONPath result or computed)."""
        if self.compute is not None:
            return self.compute(obj)
        if self.json_path is None:
            return None
        values = evaluate(parse(self.json_path), obj)
        return values[0] if values else None


def _field_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


FieldLabel = Callable[[dict[str, Any]], Any]
Prepare = Callable[[dict[str, Any], dict[str, Any] | None], None]
ExtraValidation = Callable[[dict[str, Any]], list[FieldError]]


def json_path_label(expression: str) -> FieldLabel:
    """A field label read from the object by a JSONPath (CRD `selectableFields`)."""
    steps = parse(expression)

    def read(obj: dict[str, Any]) -> Any:
        values = evaluate(steps, obj)
        return values[0] if values else None

    return read


@dataclass(frozen=True)
class ResourceType:
    """A served resource: names, scope, versions, schema, printer columns, behaviour flags."""

    group: str
    versions: tuple[str, ...]
    storage_version: str
    plural: str
    singular: str
    kind: str
    list_kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    status: bool = False
    schemas: Mapping[str, Schema | None] = field(default_factory=dict)
    columns: Mapping[str, tuple[Column, ...]] = field(default_factory=dict)
    field_labels: Mapping[str, FieldLabel] = field(default_factory=dict)
    strategic_merge: bool = False
    name_is_label: bool = False
    unconditional_update: bool = False
    prepare: Prepare | None = None
    extra_validation: ExtraValidation | None = None
    crd_name: str | None = None
    openapi_name: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """The storage key prefix: (group, plural)."""
        return (self.group, self.plural)

    @property
    def qualified(self) -> str:
        """`datasets.sedna.io` (or `pods` for the core group)."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def api_version(self, version: str) -> str:
        """`sedna.io/v1alpha1` or `v1`."""
        return f"{self.group}/{version}" if self.group else version

    def schema(self, version: str) -> Schema | None:
        """The structural schema of a version, if any."""
        return self.schemas.get(version)

    def version_columns(self, version: str) -> tuple[Column, ...]:
        """The printer columns (after `Name`) of a version."""
        return self.columns.get(version, ())

    def supports_field(self, name: str) -> bool:
        """Whether `fieldSelector` may name this field."""
        return name in ("metadata.name", "metadata.namespace") or name in self.field_labels

    def field_value(self, obj: dict[str, Any], name: str) -> str:
        """The text value of a selectable field of `obj`."""
        meta = obj.get("metadata") or {}
        if name == "metadata.name":
            return _field_text(meta.get("name"))
        if name == "metadata.namespace":
            return _field_text(meta.get("namespace"))
        label = self.field_labels.get(name)
        return _field_text(label(obj)) if label else ""

    def schema_name(self, version: str) -> str:
        """The OpenAPI component name, e.g. `io.sedna.v1alpha1.Dataset`."""
        if self.openapi_name:
            return f"{self.openapi_name}.{version}.{self.kind}"
        reversed_group = ".".join(reversed(self.group.split(".")))
        return f"{reversed_group}.{version}.{self.kind}"
