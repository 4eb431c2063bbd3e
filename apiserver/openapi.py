"""OpenAPI v3: the `/openapi/v3` index and one document per group-version.

kubectl needs, per kind, a `patch` operation carrying `x-kubernetes-group-version-kind` and a
`fieldValidation` query parameter (then it leaves validation to the server), and the kinds'
schemas under `components.schemas` for `kubectl explain`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from typing import Any

from apiserver.registry import Registry
from apiserver.resources import ResourceType

META = "io.k8s.apimachinery.pkg.apis.meta.v1"
OBJECT_META = f"{META}.ObjectMeta"
LIST_META = f"{META}.ListMeta"
STATUS = f"{META}.Status"
PATCH = f"{META}.Patch"
DELETE_OPTIONS = f"{META}.DeleteOptions"

_STRING = {"type": "string"}
_API_VERSION = {
    "description": "APIVersion defines the versioned schema of this representation of an object.",
    "type": "string",
}
_KIND = {
    "description": "Kind is a string value representing the REST resource this object represents.",
    "type": "string",
}

_COMMON_SCHEMAS: dict[str, Any] = {
    OBJECT_META: {
        "description": "ObjectMeta is metadata that all persisted resources must have.",
        "type": "object",
        "properties": {
            "name": {**_STRING, "description": "Name must be unique within a namespace."},
            "generateName": {**_STRING, "description": "Prefix for a server-generated name."},
            "namespace": {**_STRING, "description": "The namespace the object lives in."},
            "uid": {**_STRING, "description": "Unique in time and space, set by the server."},
            "resourceVersion": {**_STRING, "description": "Opaque version, set by the server."},
            "generation": {
                "type": "integer",
                "format": "int64",
                "description": "Sequence number of the desired state.",
            },
            "creationTimestamp": {**_STRING, "format": "date-time"},
            "deletionTimestamp": {**_STRING, "format": "date-time"},
            "deletionGracePeriodSeconds": {"type": "integer", "format": "int64"},
            "labels": {"type": "object", "additionalProperties": _STRING},
            "annotations": {"type": "object", "additionalProperties": _STRING},
            "ownerReferences": {"type": "array", "items": {"type": "object"}},
            "finalizers": {"type": "array", "items": _STRING},
            "managedFields": {"type": "array", "items": {"type": "object"}},
        },
    },
    LIST_META: {
        "type": "object",
        "properties": {
            "continue": _STRING,
            "remainingItemCount": {"type": "integer", "format": "int64"},
            "resourceVersion": _STRING,
        },
    },
    STATUS: {
        "type": "object",
        "properties": {
            "apiVersion": _API_VERSION,
            "kind": _KIND,
            "code": {"type": "integer", "format": "int32"},
            "message": _STRING,
            "reason": _STRING,
            "status": _STRING,
            "details": {"type": "object"},
        },
        "x-kubernetes-group-version-kind": [{"group": "", "kind": "Status", "version": "v1"}],
    },
    PATCH: {
        "description": "Patch is provided to give a concrete name and type to the patch body.",
        "type": "object",
    },
    DELETE_OPTIONS: {
        "type": "object",
        "properties": {"propagationPolicy": _STRING, "dryRun": {"type": "array", "items": _STRING}},
    },
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _query(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "description": description,
        "schema": _STRING,
        "uniqueItems": True,
    }


_DRY_RUN = _query("dryRun", "When present, modifications are not persisted (All).")
_FIELD_MANAGER = _query("fieldManager", "Name of the actor making the change.")
_FIELD_VALIDATION = _query(
    "fieldValidation",
    "How to handle unknown or duplicate fields: Ignore, Warn (default) or Strict.",
)
_FORCE = {
    "name": "force",
    "in": "query",
    "schema": {"type": "boolean"},
    "uniqueItems": True,
    "description": "Force an apply request, taking over conflicting fields.",
}
_JSON = "application/json"
_PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
)


def _path_parameters(namespaced: bool, item: bool) -> list[dict[str, Any]]:
    params = []
    if item:
        params.append(
            {
                "name": "name",
                "in": "path",
                "required": True,
                "schema": _STRING,
                "description": "name of the object",
                "uniqueItems": True,
            }
        )
    if namespaced:
        params.append(
            {
                "name": "namespace",
                "in": "path",
                "required": True,
                "schema": _STRING,
                "description": "object name and auth scope",
                "uniqueItems": True,
            }
        )
    return params


def _operation(
    rt: ResourceType,
    version: str,
    action: str,
    op_id: str,
    schema: str,
    parameters: list[dict[str, Any]],
    body_types: tuple[str, ...] = (),
    status: str = "200",
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": op_id,
        "tags": [f"{rt.group or 'core'}_{version}"],
        "parameters": parameters,
        "responses": {status: {"description": "OK", "content": {_JSON: {"schema": _ref(schema)}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": rt.group, "version": version, "kind": rt.kind},
    }
    if body_types:
        body_schema = _ref(PATCH) if action == "patch" else _ref(rt.schema_name(version))
        operation["requestBody"] = {
            "required": True,
            "content": {media: {"schema": body_schema} for media in body_types},
        }
    return operation


def _kind_paths(rt: ResourceType, version: str) -> dict[str, Any]:
    base = f"/api/{version}" if not rt.group else f"/apis/{rt.group}/{version}"
    collection = (
        f"{base}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{base}/{rt.plural}"
    )
    item = f"{collection}/{{name}}"
    kind_schema = rt.schema_name(version)
    list_schema = f"{kind_schema}List"
    name = rt.kind
    writes = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]
    paths: dict[str, Any] = {
        collection: {
            "parameters": _path_parameters(rt.namespaced, item=False),
            "get": _operation(rt, version, "list", f"list{name}", list_schema, []),
            "post": _operation(
                rt, version, "post", f"create{name}", kind_schema, writes, (_JSON,), status="201"
            ),
            "delete": _operation(
                rt, version, "deletecollection", f"deletecollection{name}", STATUS, [_DRY_RUN]
            ),
        },
        item: {
            "parameters": _path_parameters(rt.namespaced, item=True),
            "get": _operation(rt, version, "get", f"read{name}", kind_schema, []),
            "put": _operation(rt, version, "put", f"replace{name}", kind_schema, writes, (_JSON,)),
            "patch": _operation(
                rt, version, "patch", f"patch{name}", kind_schema, [*writes, _FORCE], _PATCH_TYPES
            ),
            "delete": _operation(rt, version, "delete", f"delete{name}", STATUS, [_DRY_RUN]),
        },
    }
    if rt.status:
        paths[f"{item}/status"] = {
            "parameters": _path_parameters(rt.namespaced, item=True),
            "get": _operation(rt, version, "get", f"read{name}Status", kind_schema, []),
            "put": _operation(
                rt, version, "put", f"replace{name}Status", kind_schema, writes, (_JSON,)
            ),
            "patch": _operation(
                rt,
                version,
                "patch",
                f"patch{name}Status",
                kind_schema,
                [*writes, _FORCE],
                _PATCH_TYPES,
            ),
        }
    return paths


def _kind_schema(rt: ResourceType, version: str) -> dict[str, Any]:
    schema = copy.deepcopy(
        rt.schema(version) or {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    )
    properties = schema.setdefault("properties", {})
    properties["apiVersion"] = _API_VERSION
    properties["kind"] = _KIND
    properties["metadata"] = {
        "allOf": [_ref(OBJECT_META)],
        "description": "Standard object's metadata.",
    }
    schema["x-kubernetes-group-version-kind"] = [
        {"group": rt.group, "kind": rt.kind, "version": version}
    ]
    return schema


def _list_schema(rt: ResourceType, version: str) -> dict[str, Any]:
    return {
        "description": f"{rt.list_kind} is a list of {rt.kind}",
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": _API_VERSION,
            "kind": _KIND,
            "items": {"type": "array", "items": _ref(rt.schema_name(version))},
            "metadata": {"allOf": [_ref(LIST_META)]},
        },
        "x-kubernetes-group-version-kind": [
            {"group": rt.group, "kind": rt.list_kind, "version": version}
        ],
    }


def group_version_document(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    """The OpenAPI 3.0 document of one group-version, or None when it is not served."""
    types = registry.in_group_version(group, version)
    if not types:
        return None
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = copy.deepcopy(_COMMON_SCHEMAS)
    for rt in types:
        paths.update(_kind_paths(rt, version))
        schemas[rt.schema_name(version)] = _kind_schema(rt, version)
        schemas[f"{rt.schema_name(version)}List"] = _list_schema(rt, version)
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.5"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def _proto_field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (strings and sub-messages); payloads stay < 128 bytes."""
    assert len(payload) < 128
    return bytes([(number << 3) | 2, len(payload)]) + payload


# `/openapi/v2` as kubectl asks for it (gnostic `openapi_v2.Document` in protobuf): swagger "2.0",
# info, empty paths, no definitions. kubectl fetches it only as a fallback: for a kind no
# group-version document describes (then it reports `no matches for kind ...`) and to choose
# the patch type of client-side apply (it then uses its built-in types).
OPENAPI_V2_PROTOBUF = (
    _proto_field(1, b"2.0")
    + _proto_field(2, _proto_field(1, b"Kubernetes") + _proto_field(2, b"v1.32.5"))
    + _proto_field(8, b"")
)
OPENAPI_V2_JSON: dict[str, Any] = {
    "swagger": "2.0",
    "info": {"title": "Kubernetes", "version": "v1.32.5"},
    "paths": {},
}
OPENAPI_V2_PROTOBUF_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def document_path(group: str, version: str) -> str:
    """`api/v1` or `apis/<group>/<version>`, the keys of the index."""
    return f"api/{version}" if not group else f"apis/{group}/{version}"


class OpenApiDocuments:
    """Rendered documents with their hashes, rebuilt when the registry changes."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._lock = threading.Lock()
        self._revision = -1
        self._documents: dict[str, tuple[bytes, str]] = {}

    def _refresh(self) -> dict[str, tuple[bytes, str]]:
        with self._lock:
            if self._revision != self._registry.revision:
                revision = self._registry.revision
                documents = {}
                seen = {(rt.group, v) for rt in self._registry.types() for v in rt.versions}
                for group, version in sorted(seen):
                    doc = group_version_document(self._registry, group, version)
                    if doc is None:
                        continue
                    body = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
                    digest = hashlib.sha512(body).hexdigest().upper()
                    documents[document_path(group, version)] = (body, digest)
                self._documents = documents
                self._revision = revision
            return self._documents

    def index(self) -> dict[str, Any]:
        """The `/openapi/v3` index with a hash per document."""
        return {
            "paths": {
                path: {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
                for path, (_, digest) in sorted(self._refresh().items())
            }
        }

    def document(self, path: str) -> tuple[bytes, str] | None:
        """A document's JSON and hash by index key (`apis/sedna.io/v1alpha1`)."""
        return self._refresh().get(path)
