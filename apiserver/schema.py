"""Structural OpenAPI v3 schemas of CRDs: unknown-field detection, pruning, defaulting, validation.

Messages follow the real kube-apiserver (kube-openapi validation as reported by
apiextensions-apiserver), e.g. `spec.url: Invalid value: "integer": spec.url in body must be of
type string: "integer"`.
"""

from __future__ import annotations

import base64
import copy
import ipaddress
import math
import re
import uuid
from datetime import date, datetime
from typing import Any

from apiserver.errors import (
    DUPLICATE,
    TOO_LONG,
    TOO_MANY,
    TYPE_INVALID,
    FieldError,
    invalid,
    not_supported,
    required,
)

Schema = dict[str, Any]

# Top-level fields every object has, whatever its schema says.
ROOT_FIELDS = ("apiVersion", "kind", "metadata")


def child(path: str, key: str) -> str:
    """The path of a property below `path`."""
    return f"{path}.{key}" if path else key


def json_type(value: Any) -> str:
    """The JSON type of a decoded value as OpenAPI names it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _preserves(schema: Schema) -> bool:
    return bool(schema.get("x-kubernetes-preserve-unknown-fields"))


# ---------------------------------------------------------------------------------------------
# Unknown fields and pruning


def prune(
    value: Any, schema: Schema | None, *, root: bool = True, remove: bool = True
) -> list[str]:
    """Find fields the schema does not declare; drop them when `remove` is true.

    Returns their paths (`spec.bogus`, `spec.items[0].extra`). `metadata` is not looked at here.
    """
    unknown: list[str] = []
    if schema is not None:
        _prune(value, schema, "", unknown, remove, root)
    return unknown


def _prune(
    value: Any, schema: Schema, path: str, unknown: list[str], remove: bool, root: bool
) -> None:
    if isinstance(value, dict):
        properties: dict[str, Schema] = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        embedded = bool(schema.get("x-kubernetes-embedded-resource"))
        keep_all = _preserves(schema) or additional is True
        for key in list(value):
            if (root or embedded) and key in ROOT_FIELDS:
                continue
            sub = properties.get(key)
            if sub is None and isinstance(additional, dict):
                sub = additional
            if sub is not None:
                _prune(value[key], sub, child(path, key), unknown, remove, False)
            elif not keep_all:
                unknown.append(child(path, key))
                if remove:
                    del value[key]
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                _prune(item, items, f"{path}[{index}]", unknown, remove, False)


def drop_nulls(value: Any, schema: Schema | None) -> None:
    """Remove `null` values of non-nullable properties, as the server does before defaulting."""
    if schema is None:
        return
    if isinstance(value, dict):
        properties: dict[str, Schema] = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key in list(value):
            sub = properties.get(key)
            if sub is None and isinstance(additional, dict):
                sub = additional
            if sub is None:
                continue
            if value[key] is None:
                if not sub.get("nullable"):
                    del value[key]
            else:
                drop_nulls(value[key], sub)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            drop_nulls(item, schema["items"])


def apply_defaults(value: Any, schema: Schema | None) -> None:
    """Fill in `default` values of missing properties, recursively."""
    if schema is None:
        return
    if isinstance(value, dict):
        properties: dict[str, Schema] = schema.get("properties") or {}
        for key, sub in properties.items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                apply_defaults(value[key], sub)
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            for key, item in value.items():
                if key not in properties:
                    apply_defaults(item, additional)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(item, schema["items"])


# ---------------------------------------------------------------------------------------------
# Validation

_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


def _format_ok(value: Any, fmt: str) -> bool:
    if fmt in _INT_RANGES:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return True
        low, high = _INT_RANGES[fmt]
        return low <= value <= high
    if not isinstance(value, str):
        return True
    try:
        if fmt == "date-time":
            if not _DATE_TIME.match(value):
                return False
            datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
        elif fmt == "date":
            date.fromisoformat(value)
        elif fmt == "uuid":
            uuid.UUID(value)
        elif fmt == "ipv4":
            ipaddress.IPv4Address(value)
        elif fmt == "ipv6":
            ipaddress.IPv6Address(value)
        elif fmt == "cidr":
            ipaddress.ip_network(value, strict=False)
        elif fmt == "byte":
            base64.b64decode(value, validate=True)
    except ValueError:
        return False
    return True


def _number_text(value: float) -> str:
    """Go's `%v` of a float64 bound: `1` rather than `1.0`."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _type_matches(value: Any, expected: str) -> bool:
    actual = json_type(value)
    if expected == "number":
        return actual in ("integer", "number")
    return actual == expected


def validate(
    value: Any, schema: Schema | None, path: str = "", *, root: bool = True
) -> list[FieldError]:
    """Validate a value against a structural schema; returns field errors in document order."""
    errors: list[FieldError] = []
    if schema is not None:
        _validate(value, schema, path, errors, root)
    return errors


def _type_error(path: str, value: Any, expected: str) -> FieldError:
    actual = json_type(value)
    return FieldError(
        TYPE_INVALID, path, actual, f'{path} in body must be of type {expected}: "{actual}"'
    )


def _validate(value: Any, schema: Schema, path: str, errors: list[FieldError], root: bool) -> None:
    if value is None:
        if schema.get("nullable"):
            return
        expected = schema.get("type")
        if expected:
            errors.append(_type_error(path, value, expected))
        return
    expected = schema.get("type")
    if schema.get("x-kubernetes-int-or-string"):
        if json_type(value) not in ("integer", "string"):
            errors.append(_type_error(path, value, "integer,string"))
            return
    elif expected and not _type_matches(value, expected):
        errors.append(_type_error(path, value, expected))
        return

    enum = schema.get("enum")
    if enum is not None and not any(_equal(value, option) for option in enum):
        errors.append(not_supported(path, value, enum))

    fmt = schema.get("format")
    if fmt and not _format_ok(value, fmt):
        shown = value if isinstance(value, str) else _number_text(value)
        errors.append(invalid(path, value, f'{path} in body must be of type {fmt}: "{shown}"'))

    if isinstance(value, str):
        _validate_string(value, schema, path, errors)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _validate_number(value, schema, path, errors)
    elif isinstance(value, list):
        _validate_array(value, schema, path, errors)
    elif isinstance(value, dict):
        _validate_object(value, schema, path, errors, root)

    for sub in schema.get("allOf") or []:
        _validate(value, sub, path, errors, False)
    any_of = schema.get("anyOf")
    if any_of and not any(not validate(value, sub, path, root=False) for sub in any_of):
        errors.append(invalid(path, value, "must validate at least one schema (anyOf)"))
    one_of = schema.get("oneOf")
    if one_of and sum(1 for sub in one_of if not validate(value, sub, path, root=False)) != 1:
        errors.append(invalid(path, value, "must validate one and only one schema (oneOf)"))
    negated = schema.get("not")
    if isinstance(negated, dict) and not validate(value, negated, path, root=False):
        errors.append(invalid(path, value, "must not validate the schema (not)"))


def _validate_string(value: str, schema: Schema, path: str, errors: list[FieldError]) -> None:
    max_length = schema.get("maxLength")
    if max_length is not None and len(value) > max_length:
        unit = "byte" if max_length == 1 else "bytes"
        errors.append(
            FieldError(TOO_LONG, path, value, f"may not be more than {max_length} {unit}")
        )
    min_length = schema.get("minLength")
    if min_length is not None and len(value) < min_length:
        errors.append(
            invalid(path, value, f"{path} in body should be at least {min_length} chars long")
        )
    pattern = schema.get("pattern")
    if pattern is not None:
        try:
            matched = re.search(pattern, value) is not None
        except re.error:
            matched = True
        if not matched:
            errors.append(invalid(path, value, f"{path} in body should match '{pattern}'"))


def _validate_number(value: float, schema: Schema, path: str, errors: list[FieldError]) -> None:
    minimum = schema.get("minimum")
    if minimum is not None:
        if schema.get("exclusiveMinimum") and value <= minimum:
            errors.append(
                invalid(
                    path, value, f"{path} in body should be greater than {_number_text(minimum)}"
                )
            )
        elif value < minimum:
            errors.append(
                invalid(
                    path,
                    value,
                    f"{path} in body should be greater than or equal to {_number_text(minimum)}",
                )
            )
    maximum = schema.get("maximum")
    if maximum is not None:
        if schema.get("exclusiveMaximum") and value >= maximum:
            errors.append(
                invalid(path, value, f"{path} in body should be less than {_number_text(maximum)}")
            )
        elif value > maximum:
            errors.append(
                invalid(
                    path,
                    value,
                    f"{path} in body should be less than or equal to {_number_text(maximum)}",
                )
            )
    multiple = schema.get("multipleOf")
    if multiple and not math.isclose(value / multiple, round(value / multiple)):
        errors.append(
            invalid(path, value, f"{path} in body should be a multiple of {_number_text(multiple)}")
        )


def _validate_array(value: list[Any], schema: Schema, path: str, errors: list[FieldError]) -> None:
    min_items = schema.get("minItems")
    if min_items is not None and len(value) < min_items:
        errors.append(
            invalid(path, len(value), f"{path} in body should have at least {min_items} items")
        )
    max_items = schema.get("maxItems")
    if max_items is not None and len(value) > max_items:
        errors.append(
            FieldError(TOO_MANY, path, len(value), f"must have at most {max_items} items")
        )
    list_type = schema.get("x-kubernetes-list-type")
    if schema.get("uniqueItems") or list_type == "set":
        seen: list[Any] = []
        for index, item in enumerate(value):
            if any(_equal(item, other) for other in seen):
                errors.append(FieldError(DUPLICATE, f"{path}[{index}]", item))
            seen.append(item)
    elif list_type == "map":
        keys = schema.get("x-kubernetes-list-map-keys") or []
        seen_keys: list[tuple[Any, ...]] = []
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                continue
            identity = tuple(item.get(k) for k in keys)
            if identity in seen_keys:
                shown = {k: item.get(k) for k in keys}
                errors.append(FieldError(DUPLICATE, f"{path}[{index}]", shown))
            seen_keys.append(identity)
    items = schema.get("items")
    if isinstance(items, dict):
        for index, item in enumerate(value):
            _validate(item, items, f"{path}[{index}]", errors, False)


def _validate_object(
    value: dict[str, Any], schema: Schema, path: str, errors: list[FieldError], root: bool
) -> None:
    for key in schema.get("required") or []:
        if key not in value:
            errors.append(required(child(path, key)))
    min_properties = schema.get("minProperties")
    if min_properties is not None and len(value) < min_properties:
        errors.append(
            invalid(
                path, len(value), f"{path} in body should have at least {min_properties} properties"
            )
        )
    max_properties = schema.get("maxProperties")
    if max_properties is not None and len(value) > max_properties:
        errors.append(
            FieldError(TOO_MANY, path, len(value), f"must have at most {max_properties} items")
        )
    properties: dict[str, Schema] = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    for key, item in value.items():
        if root and key in ROOT_FIELDS:
            continue
        sub = properties.get(key)
        if sub is None and isinstance(additional, dict):
            sub = additional
        if sub is not None:
            _validate(item, sub, child(path, key), errors, False)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


# ---------------------------------------------------------------------------------------------
# Checking a CRD's schema itself


def structural_problems(schema: Any, path: str) -> list[FieldError]:
    """The few structural-schema rules worth refusing a CRD for (types, `additionalProperties`)."""
    problems: list[FieldError] = []
    _check_structural(schema, path, problems, root=True)
    return problems


_TYPES = {"object", "array", "string", "integer", "number", "boolean"}


def _check_structural(schema: Any, path: str, problems: list[FieldError], *, root: bool) -> None:
    if not isinstance(schema, dict):
        problems.append(invalid(path, schema, "must be an object"))
        return
    kind = schema.get("type")
    if root and kind != "object":
        problems.append(invalid(f"{path}.type", kind, "must be object at the root"))
    if kind is not None and kind not in _TYPES:
        problems.append(not_supported(f"{path}.type", kind, sorted(_TYPES)))
    if schema.get("additionalProperties") is False:
        problems.append(invalid(f"{path}.additionalProperties", False, "must not be false"))
    if "properties" in schema and isinstance(schema.get("additionalProperties"), dict):
        problems.append(
            invalid(
                f"{path}.additionalProperties",
                "object",
                "additionalProperties and properties are mutual exclusive",
            )
        )
    for key, sub in (schema.get("properties") or {}).items():
        _check_structural(sub, f"{path}.properties[{key}]", problems, root=False)
    items = schema.get("items")
    if isinstance(items, dict):
        _check_structural(items, f"{path}.items", problems, root=False)
    if kind == "array" and items is None:
        problems.append(required(f"{path}.items", "must be specified"))
    if isinstance(schema.get("additionalProperties"), dict):
        _check_structural(
            schema["additionalProperties"], f"{path}.additionalProperties", problems, root=False
        )
