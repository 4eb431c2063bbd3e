"""CustomResourceDefinitions: checking them, their status, and the resource types they define."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from apiserver.errors import FieldError, invalid, not_supported, required
from apiserver.jsonpath import JsonPathError, parse
from apiserver.resources import Column, ResourceType, json_path_label
from apiserver.schema import structural_problems
from apiserver.validation import dns1123_label_errors, dns1123_subdomain_errors

AGE_DESCRIPTION = (
    "CreationTimestamp is a timestamp representing the server time when this object was created."
)
PRINTER_COLUMN_TYPES = ("boolean", "date", "integer", "number", "string")


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class CrdNames(_Model):
    """`spec.names`."""

    plural: str
    singular: str = ""
    kind: str
    listKind: str = ""
    shortNames: list[str] = []
    categories: list[str] = []


class PrinterColumn(_Model):
    """One `additionalPrinterColumns[]` entry."""

    name: str
    type: str
    jsonPath: str
    format: str = ""
    description: str = ""
    priority: int = 0


class SelectableField(_Model):
    """One `selectableFields[]` entry."""

    jsonPath: str


class CrdValidation(_Model):
    """`versions[].schema`."""

    openAPIV3Schema: dict[str, Any] | None = None


class CrdVersion(_Model):
    """One `spec.versions[]` entry."""

    name: str
    served: bool
    storage: bool
    schema_: CrdValidation | None = Field(default=None, alias="schema")
    subresources: dict[str, Any] | None = None
    additionalPrinterColumns: list[PrinterColumn] = []
    selectableFields: list[SelectableField] = []


class CrdSpec(_Model):
    """`spec` of a CustomResourceDefinition."""

    group: str
    names: CrdNames
    scope: Literal["Namespaced", "Cluster"]
    versions: list[CrdVersion]


_VERSION = re.compile(r"v(\d+)(?:(alpha|beta)(\d+))?$")


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Sort key putting versions in Kubernetes order: v2, v1, v1beta2, v1beta1, v1alpha1, other."""
    match = _VERSION.fullmatch(version)
    if match is None:
        return (3, 0, 0, version)
    major, stage, minor = match.groups()
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -int(major), -int(minor or 0), version)


def validate_crd(crd: dict[str, Any]) -> list[FieldError]:
    """Semantic checks beyond the CRD schema (names, versions, columns, structural schemas)."""
    errors: list[FieldError] = []
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group") or ""
    plural = names.get("plural") or ""
    name = (crd.get("metadata") or {}).get("name")
    if group and plural and name != f"{plural}.{group}":
        errors.append(invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    if group:
        errors.extend(invalid("spec.group", group, p) for p in dns1123_subdomain_errors(group))
        if "." not in group:
            errors.append(invalid("spec.group", group, "should be a domain with at least one dot"))
    for key in ("plural", "singular"):
        value = names.get(key)
        if value:
            errors.extend(
                invalid(f"spec.names.{key}", value, p) for p in dns1123_label_errors(value)
            )
    for index, short in enumerate(names.get("shortNames") or []):
        field = f"spec.names.shortNames[{index}]"
        errors.extend(invalid(field, short, p) for p in dns1123_label_errors(short))
    kind = names.get("kind")
    if kind and not re.fullmatch(r"[A-Za-z]([-A-Za-z0-9]*[A-Za-z0-9])?", kind):
        errors.append(
            invalid(
                "spec.names.kind",
                kind,
                "may have mixed case, but should otherwise match: [a-z]([-a-z0-9]*[a-z0-9])?",
            )
        )
    versions = spec.get("versions") or []
    if not versions:
        errors.append(
            required("spec.versions", "must have exactly one version marked as storage version")
        )
    elif sum(1 for v in versions if isinstance(v, dict) and v.get("storage")) != 1:
        errors.append(
            invalid(
                "spec.versions",
                [v.get("name") for v in versions if isinstance(v, dict)],
                "must have exactly one version marked as storage version",
            )
        )
    seen: set[str] = set()
    for index, version in enumerate(versions):
        if not isinstance(version, dict):
            continue
        path = f"spec.versions[{index}]"
        version_name = version.get("name") or ""
        if version_name in seen:
            errors.append(
                FieldError(("FieldValueDuplicate", "Duplicate value"), f"{path}.name", version_name)
            )
        seen.add(version_name)
        if version_name:
            errors.extend(
                invalid(f"{path}.name", version_name, p) for p in dns1123_label_errors(version_name)
            )
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        if schema is None:
            errors.append(required(f"{path}.schema.openAPIV3Schema", "schemas are required"))
        else:
            errors.extend(structural_problems(schema, f"{path}.schema.openAPIV3Schema"))
        for column_index, column in enumerate(version.get("additionalPrinterColumns") or []):
            column_path = f"{path}.additionalPrinterColumns[{column_index}]"
            column_type = column.get("type")
            if column_type not in PRINTER_COLUMN_TYPES:
                errors.append(
                    not_supported(f"{column_path}.type", column_type, PRINTER_COLUMN_TYPES)
                )
            try:
                parse(column.get("jsonPath") or "")
            except JsonPathError as exc:
                errors.append(invalid(f"{column_path}.jsonPath", column.get("jsonPath"), str(exc)))
    if not errors:
        # Whatever passes must also convert to a served type, or storage and registry diverge.
        try:
            resource_type_from_crd(crd)
        except ValidationError as exc:
            errors.extend(_pydantic_errors(exc, "spec"))
        except (JsonPathError, StopIteration) as exc:
            errors.append(invalid("spec", "", str(exc) or "cannot be served"))
    return errors


def _pydantic_errors(exc: ValidationError, prefix: str) -> list[FieldError]:
    problems = []
    for error in exc.errors():
        path = prefix
        for part in error["loc"]:
            path = f"{path}[{part}]" if isinstance(part, int) else f"{path}.{part}"
        if error["type"] == "missing":
            problems.append(required(path))
        else:
            problems.append(invalid(path, error.get("input"), error["msg"]))
    return problems


def prepare_crd(crd: dict[str, Any], old: dict[str, Any] | None) -> None:
    """Default the names and set the status a real server reports once a CRD is established."""
    spec = crd.setdefault("spec", {})
    names = spec.setdefault("names", {})
    kind = names.get("kind") or ""
    names.setdefault("singular", kind.lower())
    names.setdefault("listKind", f"{kind}List")
    for version in spec.get("versions") or []:
        if isinstance(version, dict):
            version.setdefault("served", True)
    spec.setdefault("conversion", {"strategy": "None"})
    old_status = (old or {}).get("status") or {}
    stored = list(old_status.get("storedVersions") or [])
    for version in spec.get("versions") or []:
        if (
            isinstance(version, dict)
            and version.get("storage")
            and version.get("name") not in stored
        ):
            stored.append(version["name"])
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    previous = {c.get("type"): c for c in old_status.get("conditions") or []}

    def condition(kind_: str, reason: str, message: str) -> dict[str, Any]:
        since = (previous.get(kind_) or {}).get("lastTransitionTime") or now
        return {
            "type": kind_,
            "status": "True",
            "lastTransitionTime": since,
            "reason": reason,
            "message": message,
        }

    crd["status"] = {
        "acceptedNames": {k: v for k, v in names.items() if k != "singular" or v},
        "conditions": [
            condition("NamesAccepted", "NoConflicts", "no conflicts found"),
            condition(
                "Established", "InitialNamesAccepted", "the initial names have been accepted"
            ),
        ],
        "storedVersions": stored,
    }


def resource_type_from_crd(crd: dict[str, Any]) -> ResourceType:
    """The resource type a (valid) CRD defines."""
    spec = CrdSpec.model_validate(crd.get("spec") or {})
    names = spec.names
    served = sorted((v for v in spec.versions if v.served), key=lambda v: version_priority(v.name))
    storage = next(v.name for v in spec.versions if v.storage)
    schemas: dict[str, dict[str, Any] | None] = {}
    columns: dict[str, tuple[Column, ...]] = {}
    field_labels = {}
    status = False
    for version in spec.versions:
        schemas[version.name] = version.schema_.openAPIV3Schema if version.schema_ else None
        printer = version.additionalPrinterColumns or [
            PrinterColumn(
                name="Age",
                type="date",
                jsonPath=".metadata.creationTimestamp",
                description=AGE_DESCRIPTION,
            )
        ]
        columns[version.name] = tuple(
            Column(
                name=c.name,
                type=c.type,
                json_path=c.jsonPath,
                format=c.format,
                description=c.description,
                priority=c.priority,
            )
            for c in printer
        )
        for selectable in version.selectableFields:
            field_labels[selectable.jsonPath.lstrip(".")] = json_path_label(selectable.jsonPath)
        if version.subresources and "status" in version.subresources:
            status = True
    return ResourceType(
        group=spec.group,
        versions=tuple(v.name for v in served),
        storage_version=storage,
        plural=names.plural,
        singular=names.singular or names.kind.lower(),
        kind=names.kind,
        list_kind=names.listKind or f"{names.kind}List",
        namespaced=spec.scope == "Namespaced",
        short_names=tuple(names.shortNames),
        categories=tuple(names.categories),
        status=status,
        schemas=schemas,
        columns=columns,
        field_labels=field_labels,
        crd_name=(crd.get("metadata") or {}).get("name"),
    )
