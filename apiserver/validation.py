"""Validation of object metadata: names, labels, annotations, with the real server's wording."""

from __future__ import annotations

import json
import re
from typing import Any

from apiserver.errors import FieldError, forbidden, invalid, required

_DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = _DNS1123_LABEL + r"(\." + _DNS1123_LABEL + ")*"
_LABEL_VALUE = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
_QUALIFIED_NAME = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"

DNS1123_SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    f"for validation is '{_DNS1123_SUBDOMAIN}')"
)
DNS1123_LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    f"used for validation is '{_DNS1123_LABEL}')"
)
LABEL_VALUE_MESSAGE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    f"'my_value',  or '12345', regex used for validation is '{_LABEL_VALUE}')"
)
QUALIFIED_NAME_MESSAGE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used "
    f"for validation is '{_QUALIFIED_NAME}')"
)
MAX_ANNOTATIONS_BYTES = 256 * 1024


def dns1123_subdomain_errors(value: str) -> list[str]:
    """Problems with `value` as an RFC 1123 subdomain (names of most objects)."""
    problems = []
    if len(value) > 253:
        problems.append("must be no more than 253 characters")
    if not re.fullmatch(_DNS1123_SUBDOMAIN, value):
        problems.append(DNS1123_SUBDOMAIN_MESSAGE)
    return problems


def dns1123_label_errors(value: str) -> list[str]:
    """Problems with `value` as an RFC 1123 label (namespace names)."""
    problems = []
    if len(value) > 63:
        problems.append("must be no more than 63 characters")
    if not re.fullmatch(_DNS1123_LABEL, value):
        problems.append(DNS1123_LABEL_MESSAGE)
    return problems


def qualified_name_problems(value: str) -> list[str]:
    """Problems with a label or annotation key (`[prefix/]name`)."""
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return ["prefix part must be non-empty"]
        problems = dns1123_subdomain_errors(prefix)
        if problems:
            return [f"prefix part {p}" for p in problems]
    else:
        return [
            "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
            f"'123-abc', regex used for validation is '{_QUALIFIED_NAME}') with an optional DNS "
            "subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        return ["name part must be non-empty"]
    problems = []
    if len(name) > 63:
        problems.append("name part must be no more than 63 characters")
    if not re.fullmatch(_QUALIFIED_NAME, name):
        problems.append(QUALIFIED_NAME_MESSAGE)
    return problems


def label_key_errors(key: str, field: str) -> list[FieldError]:
    """Field errors for a label key."""
    return [invalid(field, key, p) for p in qualified_name_problems(key)]


def label_value_errors(value: str, field: str) -> list[FieldError]:
    """Field errors for a label value."""
    problems = []
    if len(value) > 63:
        problems.append("must be no more than 63 characters")
    if not re.fullmatch(_LABEL_VALUE, value):
        problems.append(LABEL_VALUE_MESSAGE)
    return [invalid(field, value, p) for p in problems]


def validate_name(name: Any, field: str, *, label: bool = False) -> list[FieldError]:
    """Errors for an object name: a DNS-1123 subdomain (or label for namespaces)."""
    if not isinstance(name, str) or not name:
        return [required(field, "name or generateName is required")]
    check = dns1123_label_errors if label else dns1123_subdomain_errors
    return [invalid(field, name, problem) for problem in check(name)]


def validate_metadata(
    meta: dict[str, Any], *, namespaced: bool, label_names: bool
) -> list[FieldError]:
    """Errors in an object's metadata (name, namespace, labels, annotations, finalizers)."""
    errors: list[FieldError] = []
    errors.extend(validate_name(meta.get("name"), "metadata.name", label=label_names))
    namespace = meta.get("namespace")
    if namespaced:
        if not namespace:
            errors.append(required("metadata.namespace"))
        else:
            errors.extend(
                invalid("metadata.namespace", namespace, p) for p in dns1123_label_errors(namespace)
            )
    elif namespace:
        errors.append(forbidden("metadata.namespace", "not allowed on this type"))
    for key, value in (meta.get("labels") or {}).items():
        errors.extend(label_key_errors(key, "metadata.labels"))
        errors.extend(label_value_errors(value, "metadata.labels"))
    annotations = meta.get("annotations") or {}
    for key in annotations:
        errors.extend(invalid("metadata.annotations", key, p) for p in qualified_name_problems(key))
    size = sum(len(k) + len(v) for k, v in annotations.items())
    if size > MAX_ANNOTATIONS_BYTES:
        errors.append(
            FieldError(
                ("FieldValueTooLong", "Too long"),
                "metadata.annotations",
                detail=f"may not be more than {MAX_ANNOTATIONS_BYTES} bytes",
            )
        )
    for index, finalizer in enumerate(meta.get("finalizers") or []):
        field = f"metadata.finalizers[{index}]"
        errors.extend(invalid(field, finalizer, p) for p in qualified_name_problems(finalizer))
    return errors


# ObjectMeta fields and their JSON types, for strict decoding of `metadata`.
OBJECT_META_FIELDS: dict[str, str] = {
    "name": "string",
    "generateName": "string",
    "namespace": "string",
    "selfLink": "string",
    "uid": "string",
    "resourceVersion": "string",
    "generation": "integer",
    "creationTimestamp": "string",
    "deletionTimestamp": "string",
    "deletionGracePeriodSeconds": "integer",
    "labels": "map",
    "annotations": "map",
    "ownerReferences": "array",
    "finalizers": "array",
    "managedFields": "array",
}


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def metadata_decoding_problems(meta: Any) -> tuple[list[str], list[str]]:
    """Decoding errors (wrong JSON types) and unknown fields of a `metadata` value."""
    if not isinstance(meta, dict):
        kind = _json_kind(meta)
        return [
            f"json: cannot unmarshal {kind} into Go struct field .metadata of type v1.ObjectMeta"
        ], []
    errors: list[str] = []
    unknown: list[str] = []
    for key, value in meta.items():
        expected = OBJECT_META_FIELDS.get(key)
        if expected is None:
            unknown.append(f"metadata.{key}")
            continue
        if value is None:
            continue
        kind = _json_kind(value)
        where = f"Go struct field ObjectMeta.metadata.{key}"
        if expected == "string" and kind != "string":
            errors.append(f"json: cannot unmarshal {kind} into {where} of type string")
        elif expected == "integer" and (kind != "number" or not float(value).is_integer()):
            errors.append(f"json: cannot unmarshal {kind} into {where} of type int64")
        elif expected == "array" and kind != "array":
            errors.append(f"json: cannot unmarshal {kind} into {where} of type []")
        elif expected == "map":
            if kind != "object":
                errors.append(
                    f"json: cannot unmarshal {kind} into {where} of type map[string]string"
                )
            else:
                for item in value.values():
                    if not isinstance(item, str):
                        errors.append(
                            f"json: cannot unmarshal {_json_kind(item)} into {where} of type string"
                        )
                        break
    for index, finalizer in enumerate(meta.get("finalizers") or []):
        if not isinstance(finalizer, str):
            errors.append(
                f"json: cannot unmarshal {_json_kind(finalizer)} into Go struct field "
                f"ObjectMeta.metadata.finalizers of type string (index {index})"
            )
    return errors, unknown


def canonical_json(value: Any) -> str:
    """A stable JSON text, for comparing documents."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
