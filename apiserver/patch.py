"""Patch formats: JSON merge patch (RFC 7386), JSON Patch (RFC 6902), strategic merge patch.

All functions return a new document and never modify their arguments, so a failed patch leaves
nothing half-applied.
"""

from __future__ import annotations

import copy
from typing import Any


class PatchError(ValueError):
    """A patch that is malformed (`bad_request`) or cannot be applied to the document."""

    def __init__(self, message: str, *, malformed: bool = False) -> None:
        super().__init__(message)
        self.malformed = malformed


def json_copy(value: Any) -> Any:
    """A deep copy of a JSON document (dicts, lists, scalars): ``copy.deepcopy`` without its
    memo and dispatch, several times faster on the objects every write copies."""
    if isinstance(value, dict):
        return {key: json_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_copy(item) for item in value]
    return value


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch: objects merge, `null` deletes, the rest replaces."""
    if not isinstance(patch, dict):
        return json_copy(patch)
    return _merge_into(json_copy(target) if isinstance(target, dict) else {}, patch)


def _merge_into(result: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Merge ``patch`` into ``result``, a copy the caller owns (copied once, not per level)."""
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            inner = result.get(key)
            result[key] = _merge_into(inner if isinstance(inner, dict) else {}, value)
        else:
            result[key] = json_copy(value)
    return result


# ---------------------------------------------------------------------------------------------
# JSON Patch (RFC 6902) with JSON Pointers (RFC 6901)


def parse_pointer(pointer: str) -> list[str]:
    """Split a JSON Pointer into unescaped reference tokens (`~1` is `/`, `~0` is `~`)."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise PatchError(
            f'JSON pointer must be empty or start with a "/": {pointer!r}', malformed=True
        )
    return [token.replace("~1", "/").replace("~0", "~") for token in pointer[1:].split("/")]


def _array_index(token: str, length: int, *, allow_end: bool, pointer: str) -> int:
    if token == "-" and allow_end:
        return length
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchError(f"invalid array index {token!r} in path {pointer!r}")
    index = int(token)
    limit = length if allow_end else length - 1
    if index > limit:
        raise PatchError(f"array index {index} out of bounds in path {pointer!r}")
    return index


def _resolve_parent(doc: Any, tokens: list[str], pointer: str) -> tuple[Any, str]:
    """Return the container holding the last token of `tokens` and that token."""
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f"doc is missing path: {pointer!r}: missing value")
            node = node[token]
        elif isinstance(node, list):
            node = node[_array_index(token, len(node), allow_end=False, pointer=pointer)]
        else:
            raise PatchError(f"doc is missing path: {pointer!r}: missing value")
    return node, tokens[-1]


def _get(doc: Any, pointer: str) -> Any:
    tokens = parse_pointer(pointer)
    if not tokens:
        return doc
    parent, last = _resolve_parent(doc, tokens, pointer)
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"doc is missing key: {pointer}: missing value")
        return parent[last]
    if isinstance(parent, list):
        return parent[_array_index(last, len(parent), allow_end=False, pointer=pointer)]
    raise PatchError(f"doc is missing path: {pointer!r}: missing value")


def _add(doc: Any, pointer: str, value: Any) -> Any:
    tokens = parse_pointer(pointer)
    if not tokens:
        return value
    parent, last = _resolve_parent(doc, tokens, pointer)
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_array_index(last, len(parent), allow_end=True, pointer=pointer), value)
    else:
        raise PatchError(f"add operation does not apply: doc is missing path: {pointer!r}")
    return doc


def _remove(doc: Any, pointer: str) -> tuple[Any, Any]:
    tokens = parse_pointer(pointer)
    if not tokens:
        raise PatchError("remove operation does not apply: cannot remove the whole document")
    parent, last = _resolve_parent(doc, tokens, pointer)
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(
                f"remove operation does not apply: doc is missing path: {pointer!r}: missing value"
            )
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_array_index(last, len(parent), allow_end=False, pointer=pointer))
    raise PatchError(f"remove operation does not apply: doc is missing path: {pointer!r}")


def _replace(doc: Any, pointer: str, value: Any) -> Any:
    tokens = parse_pointer(pointer)
    if not tokens:
        return value
    parent, last = _resolve_parent(doc, tokens, pointer)
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(
                f"replace operation does not apply: doc is missing key: {pointer}: missing value"
            )
        parent[last] = value
    elif isinstance(parent, list):
        parent[_array_index(last, len(parent), allow_end=False, pointer=pointer)] = value
    else:
        raise PatchError(f"replace operation does not apply: doc is missing path: {pointer!r}")
    return doc


def _operation_field(op: dict[str, Any], name: str, index: int) -> Any:
    if name not in op:
        raise PatchError(
            f'operation {index} ("{op.get("op")}") is missing the "{name}" member', malformed=True
        )
    return op[name]


def json_patch(document: Any, operations: Any) -> Any:
    """Apply an RFC 6902 JSON Patch (add, remove, replace, move, copy, test)."""
    if not isinstance(operations, list):
        raise PatchError(
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch", malformed=True
        )
    doc = copy.deepcopy(document)
    for index, op in enumerate(operations):
        if not isinstance(op, dict):
            raise PatchError(f"operation {index} is not a JSON object", malformed=True)
        kind = op.get("op")
        path = _operation_field(op, "path", index)
        if not isinstance(path, str):
            raise PatchError(f"operation {index}: path must be a string", malformed=True)
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(_operation_field(op, "value", index)))
        elif kind == "remove":
            doc, _ = _remove(doc, path)
        elif kind == "replace":
            doc = _replace(doc, path, copy.deepcopy(_operation_field(op, "value", index)))
        elif kind == "move":
            source = _operation_field(op, "from", index)
            if path != source and path.startswith(source + "/"):
                raise PatchError(f"move operation: cannot move {source!r} into its child {path!r}")
            doc, value = _remove(doc, source)
            doc = _add(doc, path, value)
        elif kind == "copy":
            value = copy.deepcopy(_get(doc, _operation_field(op, "from", index)))
            doc = _add(doc, path, value)
        elif kind == "test":
            expected = _operation_field(op, "value", index)
            try:
                actual = _get(doc, path)
            except PatchError:
                actual = _MISSING
            if not _json_equal(actual, expected):
                raise PatchError(f"testing value {path} failed: test failed")
        else:
            raise PatchError(f"Unexpected kind: {kind}", malformed=True)
    return doc


_MISSING = object()


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: `1 == 1.0`, but `True != 1`."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


# ---------------------------------------------------------------------------------------------
# Strategic merge patch (built-in kinds only; custom resources answer 415 as the real server).

# The merge keys of list fields in the built-in kinds this server serves, by field name
# (k8s.io/api `patchMergeKey` tags). A list not named here is replaced as a whole.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "ports": "containerPort",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "volumes": "name",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "conditions": "type",
    "addresses": "type",
    "ownerReferences": "uid",
}
# Lists of scalars whose patch strategy is `merge` (union instead of replace).
MERGED_SCALAR_LISTS = frozenset({"finalizers"})

_DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"
_ELEMENT_ORDER = "$setElementOrder/"
_RETAIN_KEYS = "$retainKeys"


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Apply a strategic merge patch with the merge keys of the built-in kinds."""
    if not isinstance(patch, dict):
        raise PatchError(
            "json: cannot unmarshal array into Go value of type map[string]interface {}",
            malformed=True,
        )
    return _smp_map(copy.deepcopy(target) if isinstance(target, dict) else {}, patch)


def _smp_map(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return {}
    retain = patch.get(_RETAIN_KEYS)
    for key, value in patch.items():
        if key in ("$patch", _RETAIN_KEYS) or key.startswith(_ELEMENT_ORDER):
            continue
        if key.startswith(_DELETE_PRIMITIVE):
            field = key[len(_DELETE_PRIMITIVE) :]
            if isinstance(target.get(field), list) and isinstance(value, list):
                target[field] = [item for item in target[field] if item not in value]
            continue
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict):
            if value.get("$patch") == "delete":
                target.pop(key, None)
            else:
                current = target.get(key)
                target[key] = _smp_map(current if isinstance(current, dict) else {}, value)
        elif isinstance(value, list):
            target[key] = _smp_list(key, target.get(key), value)
        else:
            target[key] = copy.deepcopy(value)
    if isinstance(retain, list):
        for key in list(target):
            if key not in retain:
                del target[key]
    return target


def _smp_list(field: str, current: Any, patch: list[Any]) -> list[Any]:
    if not isinstance(current, list):
        current = []
    if field in MERGED_SCALAR_LISTS:
        merged = list(current)
        merged.extend(item for item in patch if item not in merged)
        return merged
    key = MERGE_KEYS.get(field)
    if key is None or not all(isinstance(item, dict) for item in patch):
        if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
            return [item for item in patch if not (isinstance(item, dict) and "$patch" in item)]
        return copy.deepcopy(patch)
    result = [copy.deepcopy(item) for item in current]
    for item in patch:
        if item.get("$patch") == "replace":
            return [copy.deepcopy(i) for i in patch if i.get("$patch") is None]
        position = next(
            (i for i, existing in enumerate(result) if existing.get(key) == item.get(key)), None
        )
        if item.get("$patch") == "delete":
            if position is not None:
                result.pop(position)
        elif position is None:
            result.append({k: copy.deepcopy(v) for k, v in item.items() if k != "$patch"})
        else:
            result[position] = _smp_map(result[position], item)
    return result
