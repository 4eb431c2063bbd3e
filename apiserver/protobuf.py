"""Just enough of Kubernetes' protobuf encoding to read what kubectl sends as protobuf.

kubectl's typed generators (`kubectl create namespace`) POST
`application/vnd.kubernetes.protobuf`: the `k8s\\x00` magic, then a `runtime.Unknown` envelope
(`typeMeta`, `raw`), where `raw` is the typed object. Only `v1 Namespace` is decoded (with the
common ObjectMeta fields); other kinds are refused with 415 by the caller.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"


class ProtobufError(ValueError):
    """A body that is not a Kubernetes protobuf object this server can read."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) pairs; varints as int, length-delimited as bytes."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            yield number, value
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("truncated field")
            yield number, data[pos : pos + length]
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise ProtobufError("expected a string field")
    return value.decode("utf-8")


def _map_entry(value: int | bytes) -> tuple[str, str]:
    if not isinstance(value, bytes):
        raise ProtobufError("expected a map entry")
    entry = {number: _text(item) for number, item in _fields(value)}
    return entry.get(1, ""), entry.get(2, "")


def _time(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise ProtobufError("expected a Time")
    seconds = next((v for n, v in _fields(value) if n == 1 and isinstance(v, int)), 0)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_META_STRINGS = {1: "name", 2: "generateName", 3: "namespace", 5: "uid", 6: "resourceVersion"}
_OWNER_FIELDS = {1: "kind", 3: "name", 4: "uid", 5: "apiVersion"}


def _object_meta(data: int | bytes) -> dict[str, Any]:
    if not isinstance(data, bytes):
        raise ProtobufError("expected ObjectMeta")
    meta: dict[str, Any] = {}
    for number, value in _fields(data):
        if number in _META_STRINGS:
            text = _text(value)
            if text:
                meta[_META_STRINGS[number]] = text
        elif number == 8:
            meta["creationTimestamp"] = _time(value)
        elif number in (11, 12):
            key, item = _map_entry(value)
            meta.setdefault("labels" if number == 11 else "annotations", {})[key] = item
        elif number == 13 and isinstance(value, bytes):
            owner: dict[str, Any] = {}
            for owner_number, owner_value in _fields(value):
                if owner_number in _OWNER_FIELDS:
                    owner[_OWNER_FIELDS[owner_number]] = _text(owner_value)
                elif owner_number in (6, 7):
                    owner["controller" if owner_number == 6 else "blockOwnerDeletion"] = bool(
                        owner_value
                    )
            meta.setdefault("ownerReferences", []).append(owner)
        elif number == 14:
            meta.setdefault("finalizers", []).append(_text(value))
    return meta


def _namespace(raw: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Namespace", "metadata": {}}
    for number, value in _fields(raw):
        if number == 1:
            obj["metadata"] = _object_meta(value)
        elif number == 2 and isinstance(value, bytes):
            finalizers = [_text(v) for n, v in _fields(value) if n == 1]
            obj["spec"] = {"finalizers": finalizers} if finalizers else {}
    return obj


_DECODERS = {("v1", "Namespace"): _namespace}


def decode(body: bytes) -> dict[str, Any]:
    """Decode a protobuf-encoded object; raises `ProtobufError` for anything unsupported."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing the k8s protobuf magic prefix")
    api_version = kind = ""
    raw = b""
    for number, value in _fields(body[len(MAGIC) :]):
        if number == 1 and isinstance(value, bytes):
            for type_number, type_value in _fields(value):
                if type_number == 1:
                    api_version = _text(type_value)
                elif type_number == 2:
                    kind = _text(type_value)
        elif number == 2 and isinstance(value, bytes):
            raw = value
    decoder = _DECODERS.get((api_version, kind))
    if decoder is None:
        raise ProtobufError(f"protobuf is not supported for {api_version or '?'} {kind or '?'}")
    return decoder(raw)
