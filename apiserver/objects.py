"""Object lifecycle with the real API server's semantics, independent of HTTP.

Create, get, list, update, patch, server-side apply, delete (finalizers, garbage collection of
dependents, namespace termination), the status subresource and CRD registration.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import logging
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apiserver import errors as err
from apiserver.builtins import CUSTOM_RESOURCE_DEFINITIONS, NAMESPACES, PROTECTED_NAMESPACES
from apiserver.crds import resource_type_from_crd
from apiserver.errors import ApiError, FieldError, Status, StatusDetails
from apiserver.patch import PatchError, json_copy, json_patch, merge_patch, strategic_merge_patch
from apiserver.registry import Registry
from apiserver.resources import ResourceType
from apiserver.schema import apply_defaults, drop_nulls, prune, validate
from apiserver.selectors import FieldSelector, LabelSelector, SelectorError
from apiserver.store import Key, Store, Transaction
from apiserver.validation import canonical_json, metadata_decoding_problems, validate_metadata

log = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

# Server-owned metadata that clients cannot change on update.
_IMMUTABLE_META = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "name",
    "namespace",
)
_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def now_rfc3339() -> str:
    """The current time as the API server writes timestamps (`2026-01-02T03:04:05Z`)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class WriteOptions:
    """Query options of a write: `dryRun`, `fieldValidation`, plus duplicate JSON keys seen."""

    dry_run: bool = False
    field_validation: str = "Warn"
    duplicate_fields: tuple[str, ...] = ()


@dataclass
class WriteResult:
    """The stored (or, for a dry run, would-be) object, whether it was created, and warnings."""

    obj: dict[str, Any]
    created: bool = False
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ListOptions:
    """Selectors and paging of a list or watch."""

    label_selector: LabelSelector = field(default_factory=LabelSelector)
    field_selector: FieldSelector = field(default_factory=FieldSelector)
    limit: int | None = None
    continue_token: str | None = None


@dataclass
class DeleteResult:
    """The body of a DELETE answer: a `Status` when gone, else the object being deleted."""

    body: dict[str, Any]
    deleted: bool


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
        obj["metadata"] = meta
    return meta


def _without_rv(obj: dict[str, Any]) -> str:
    clone = {key: value for key, value in obj.items() if key != "apiVersion"}  # no deep copy:
    meta = obj.get("metadata")  # nothing below is modified
    if isinstance(meta, dict):
        clone["metadata"] = {key: value for key, value in meta.items() if key != "resourceVersion"}
    return canonical_json(clone)


def _content(rt: ResourceType, obj: dict[str, Any]) -> str:
    """Everything a change of which bumps `generation` (not metadata, not a subresource status)."""
    skip = {"metadata", "apiVersion", "kind"}
    if rt.status:
        skip.add("status")
    return canonical_json({k: v for k, v in obj.items() if k not in skip})


def _owner_uids(obj: dict[str, Any]) -> list[str]:
    return [
        ref.get("uid") for ref in _meta(obj).get("ownerReferences") or [] if isinstance(ref, dict)
    ]


def encode_continue(rv: int, namespace: str, name: str) -> str:
    """An opaque `continue` token: where the next page starts and the list's resourceVersion."""
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": [namespace, name]})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    """Parse a `continue` token; raises a 400 when it is not one of ours."""
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        namespace, name = data["start"]
        return int(data["rv"]), (str(namespace), str(name))
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise err.bad_request(f"continue key is not valid: {exc}") from exc


class ObjectService:
    """All reads and writes of objects, shared by every HTTP request."""

    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry

    # --- helpers --------------------------------------------------------------------------

    @staticmethod
    def key(rt: ResourceType, namespace: str | None, name: str) -> Key:
        """The storage key of an object."""
        return Key(rt.group, rt.plural, (namespace or "") if rt.namespaced else "", name)

    @staticmethod
    def serve(rt: ResourceType, version: str, obj: dict[str, Any]) -> dict[str, Any]:
        """The object as a client of `version` sees it (conversion strategy `None`)."""
        obj["apiVersion"] = rt.api_version(version)
        obj["kind"] = rt.kind
        return obj

    def _where(self, rt: ResourceType, version: str) -> str:
        return f'{rt.kind} in version "{version}" cannot be handled as a {rt.kind}'

    def _check_type_meta(self, rt: ResourceType, version: str, obj: Any) -> dict[str, Any]:
        if not isinstance(obj, dict):
            kind = "array" if isinstance(obj, list) else type(obj).__name__
            raise err.bad_request(
                f"{self._where(rt, version)}: json: cannot unmarshal {kind} into Go value of "
                "type map[string]interface {}"
            )
        if rt.crd_name is not None:
            # Custom resources are decoded without defaults for their type, as the real
            # server's unstructured decoder does: both fields must be written.
            for required, spelled in (("kind", "Kind"), ("apiVersion", "apiVersion")):
                if not obj.get(required):
                    shown = canonical_json(obj)
                    shown = shown if len(shown) <= 1024 else shown[:1024] + "..."
                    raise err.bad_request(f"Object '{spelled}' is missing in '{shown}'")
        expected = rt.api_version(version)
        api_version = obj.get("apiVersion")
        if api_version and api_version != expected:
            raise err.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({expected})"
            )
        kind = obj.get("kind")
        if kind and kind != rt.kind:
            raise err.bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
            )
        if obj.get("metadata") is None:
            obj["metadata"] = {}
        return self.serve(rt, version, obj)

    def _decode(
        self, rt: ResourceType, version: str, obj: dict[str, Any], opts: WriteOptions
    ) -> list[str]:
        """Strict decoding: unknown and duplicate fields, then pruning, null-dropping, defaults."""
        problems, unknown_meta = metadata_decoding_problems(obj.get("metadata"))
        if problems:
            raise err.bad_request(f"{self._where(rt, version)}: {problems[0]}")
        schema = rt.schema(version)
        # One pass finds and drops the unknown fields (a refused body is thrown away anyway).
        unknown = unknown_meta + prune(obj, schema, remove=True)
        strict = [f'unknown field "{path}"' for path in unknown]
        strict += [f'duplicate field "{path}"' for path in opts.duplicate_fields]
        if strict and opts.field_validation == "Strict":
            raise err.bad_request(
                f"{self._where(rt, version)}: strict decoding error: {', '.join(strict)}"
            )
        meta = _meta(obj)
        for path in unknown_meta:
            meta.pop(path.split(".", 1)[1], None)
        drop_nulls(obj, schema)
        apply_defaults(obj, schema)
        return strict if opts.field_validation == "Warn" else []

    def _validate(self, rt: ResourceType, version: str, obj: dict[str, Any]) -> None:
        meta = _meta(obj)
        problems = validate_metadata(meta, namespaced=rt.namespaced, label_names=rt.name_is_label)
        problems += validate(obj, rt.schema(version))
        if rt.extra_validation is not None:
            problems += rt.extra_validation(obj)
        if problems:
            raise err.invalid_object(rt.kind, rt.group, str(meta.get("name") or ""), problems)

    def _check_namespace(self, txn: Transaction, rt: ResourceType, namespace: str) -> None:
        ns = txn.get(Key("", "namespaces", "", namespace))
        if ns is None:
            raise err.not_found("namespaces", "", namespace)
        if _meta(ns).get("deletionTimestamp"):
            raise ApiError(
                403,
                "Forbidden",
                f'{rt.qualified} "{namespace}" is forbidden: unable to create new content in '
                f"namespace {namespace} because it is being terminated",
                StatusDetails(name=namespace, group=rt.group, kind=rt.plural),
            )

    def _after_commit(self, rt: ResourceType, obj: dict[str, Any] | None, removed: bool) -> None:
        """Keep the registry in step with stored CRDs."""
        if rt is not CUSTOM_RESOURCE_DEFINITIONS or obj is None:
            return
        spec = obj.get("spec") or {}
        if removed:
            self.registry.remove(spec.get("group", ""), (spec.get("names") or {}).get("plural", ""))
        else:
            self.registry.put(resource_type_from_crd(obj))

    # --- reads ----------------------------------------------------------------------------

    def get(
        self, rt: ResourceType, version: str, namespace: str | None, name: str
    ) -> dict[str, Any]:
        """One object, or 404."""
        obj = self.store.get(self.key(rt, namespace, name))
        if obj is None:
            raise err.not_found(rt.plural, rt.group, name)
        return self.serve(rt, version, obj)

    def list(
        self, rt: ResourceType, version: str, namespace: str | None, opts: ListOptions
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Matching objects (one page) and the list metadata (`resourceVersion`, `continue`)."""
        try:
            opts.field_selector.check_supported(rt.supports_field)
        except SelectorError as exc:
            raise err.bad_request(str(exc)) from exc
        after = None
        pinned_rv = None
        if opts.continue_token:
            pinned_rv, after = decode_continue(opts.continue_token)
        objects, rv = self.scan(rt, namespace, after=after, name=opts.field_selector.exact_name())
        items: list[dict[str, Any]] = []
        token = ""
        for obj in objects:
            if not self.matches(rt, obj, opts):
                continue
            if opts.limit and len(items) >= opts.limit:
                last = _meta(items[-1])
                token = encode_continue(pinned_rv or rv, last.get("namespace", ""), last["name"])
                break
            items.append(self.serve(rt, version, obj))
        metadata = {"resourceVersion": str(pinned_rv or rv), "continue": token}
        return items, metadata

    def scan(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        after: tuple[str, str] | None = None,
        name: str | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """All stored objects of a type (in a namespace) and the resourceVersion of the read."""
        return self.store.scan(
            rt.group, rt.plural, namespace if rt.namespaced else None, after=after, name=name
        )

    @staticmethod
    def matches(rt: ResourceType, obj: dict[str, Any], opts: ListOptions) -> bool:
        """Whether an object satisfies the label and field selectors."""
        if not opts.label_selector.matches(_meta(obj).get("labels")):
            return False
        return opts.field_selector.matches(lambda name: rt.field_value(obj, name))

    # --- create ---------------------------------------------------------------------------

    def _prepare_create(
        self, rt: ResourceType, version: str, namespace: str | None, body: Any, opts: WriteOptions
    ) -> tuple[dict[str, Any], list[str]]:
        obj = self._check_type_meta(rt, version, body)
        warnings = self._decode(rt, version, obj, opts)
        meta = _meta(obj)
        if rt.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise _namespace_mismatch()
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if meta.get("resourceVersion"):
            raise err.bad_request("resourceVersion should not be set on objects to be created")
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(secrets.choice(_NAME_SUFFIX_ALPHABET) for _ in range(5))
            meta["name"] = f"{meta['generateName']}{suffix}"
        for server_owned in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "managedFields",
            "generation",
        ):
            meta.pop(server_owned, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta["generation"] = 1
        if rt.status:
            obj.pop("status", None)
        if rt.prepare is not None:
            rt.prepare(obj, None)
        self._validate(rt, version, obj)
        return obj, warnings

    def _insert(
        self, txn: Transaction, rt: ResourceType, obj: dict[str, Any], opts: WriteOptions
    ) -> None:
        meta = _meta(obj)
        if rt.namespaced:
            self._check_namespace(txn, rt, meta["namespace"])
        key = self.key(rt, meta.get("namespace"), meta["name"])
        if txn.get(key) is not None:
            raise err.already_exists(rt.plural, rt.group, meta["name"])
        if not opts.dry_run:
            txn.put(key, obj, None)

    def create(
        self, rt: ResourceType, version: str, namespace: str | None, body: Any, opts: WriteOptions
    ) -> WriteResult:
        """POST: a new object (201), 409 if it exists, 422 if invalid."""
        obj, warnings = self._prepare_create(rt, version, namespace, body, opts)
        with self.store.transaction() as txn:
            self._insert(txn, rt, obj, opts)
        if not opts.dry_run:
            self._after_commit(rt, obj, removed=False)
        return WriteResult(self.serve(rt, version, obj), created=True, warnings=warnings)

    # --- update and patch -----------------------------------------------------------------

    def _precondition(
        self, rt: ResourceType, old: dict[str, Any], rv: Any, *, required_rv: bool
    ) -> None:
        name = _meta(old).get("name", "")
        if rv:
            if str(rv) != _meta(old).get("resourceVersion"):
                raise err.conflict(rt.plural, rt.group, name)
        elif required_rv:
            problem = FieldError(
                err.INVALID,
                "metadata.resourceVersion",
                err.Raw("0x0"),
                "must be specified for an update",
            )
            raise err.invalid_object(rt.kind, rt.group, name, [problem])

    def _merge_server_fields(
        self, rt: ResourceType, old: dict[str, Any], new: dict[str, Any], subresource: str | None
    ) -> dict[str, Any]:
        if subresource == "status":
            result = json_copy(old)
            if "status" in new:
                result["status"] = new["status"]
            else:
                result.pop("status", None)
            return result
        result = new
        if rt.status:
            if "status" in old:
                result["status"] = json_copy(old["status"])
            else:
                result.pop("status", None)
        meta = _meta(result)
        old_meta = _meta(old)
        for key in _IMMUTABLE_META:
            if key in old_meta:
                meta[key] = old_meta[key]
            else:
                meta.pop(key, None)
        meta.pop("managedFields", None)
        meta.pop("selfLink", None)
        return result

    def _commit_update(
        self,
        txn: Transaction,
        rt: ResourceType,
        version: str,
        key: Key,
        old: dict[str, Any],
        new: dict[str, Any],
        opts: WriteOptions,
    ) -> tuple[dict[str, Any], bool]:
        """Validate and store an update; returns the result and whether the object is gone."""
        old_meta, meta = _meta(old), _meta(new)
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                problem = err.forbidden(
                    "metadata.finalizers",
                    f"no new finalizers can be added if the object is being deleted, found new "
                    f"finalizers {json.dumps(sorted(added))}",
                )
                raise err.invalid_object(rt.kind, rt.group, key.name, [problem])
        if rt.prepare is not None:
            rt.prepare(new, old)
        if _content(rt, old) != _content(rt, new):
            meta["generation"] = int(old_meta.get("generation") or 0) + 1
        self.serve(rt, version, new)
        self._validate(rt, version, new)
        meta["resourceVersion"] = old_meta.get("resourceVersion")
        if _without_rv(new) == _without_rv(self.serve(rt, version, json_copy(old))):
            return new, False
        if opts.dry_run:
            return new, False
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            # The last finalizer is gone: the deletion completes now.
            self._remove(txn, rt, key, new, "Background")
            return new, True
        txn.put(key, new, old)
        return new, False

    def update(
        self,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        name: str,
        body: Any,
        opts: WriteOptions,
        subresource: str | None = None,
    ) -> WriteResult:
        """PUT: replace an object (or its status); 409 on a stale resourceVersion."""
        obj = self._check_type_meta(rt, version, body)
        warnings = self._decode(rt, version, obj, opts)
        meta = _meta(obj)
        if meta.get("name") and meta["name"] != name:
            raise _name_mismatch(meta["name"], name)
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise _namespace_mismatch()
        key = self.key(rt, namespace, name)
        with self.store.transaction() as txn:
            old = txn.get(key)
            if old is None:
                raise err.not_found(rt.plural, rt.group, name)
            uid, old_uid = meta.get("uid"), _meta(old).get("uid")
            if uid and uid != old_uid:
                # A PUT's uid is a precondition (the real server's `defaultUpdatedObjectInfo`).
                raise err.conflict(
                    rt.plural,
                    rt.group,
                    name,
                    f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                    f"{old_uid}",
                )
            self._precondition(
                rt, old, meta.get("resourceVersion"), required_rv=not rt.unconditional_update
            )
            new = self._merge_server_fields(rt, old, obj, subresource)
            result, removed = self._commit_update(txn, rt, version, key, old, new, opts)
        if not opts.dry_run:
            self._after_commit(rt, result, removed=removed)
        return WriteResult(self.serve(rt, version, result), warnings=warnings)

    def patch_media_types(self, rt: ResourceType) -> list[str]:
        """The patch content types a resource accepts (for the 415 message)."""
        types = list(err.PATCH_MEDIA_TYPES)
        if rt.strategic_merge:
            types.insert(2, STRATEGIC_MERGE_PATCH)
        return types

    def patch(
        self,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        name: str,
        content_type: str,
        body: Any,
        opts: WriteOptions,
        subresource: str | None = None,
    ) -> WriteResult:
        """PATCH with merge, JSON, strategic merge (built-in kinds) or server-side apply."""
        if content_type == STRATEGIC_MERGE_PATCH and not rt.strategic_merge:
            raise err.unsupported_media_type(self.patch_media_types(rt))
        if content_type not in (MERGE_PATCH, JSON_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH):
            raise err.unsupported_media_type(self.patch_media_types(rt))
        if content_type in (MERGE_PATCH, STRATEGIC_MERGE_PATCH) and not isinstance(body, dict):
            kind = "array" if isinstance(body, list) else type(body).__name__
            raise err.bad_request(
                f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
            )
        key = self.key(rt, namespace, name)
        created = removed = False
        with self.store.transaction() as txn:
            old = txn.get(key)
            if old is None:
                if content_type != APPLY_PATCH or subresource:
                    raise err.not_found(rt.plural, rt.group, name)
                obj, warnings = self._prepare_apply_create(rt, version, namespace, name, body, opts)
                self._insert(txn, rt, obj, opts)
                result, created = obj, True
            else:
                current = self.serve(rt, version, json_copy(old))
                patched = self._apply_patch(rt, current, content_type, body, name)
                obj = self._check_type_meta(rt, version, patched)
                warnings = self._decode(rt, version, obj, opts)
                _check_immutable(rt, name, _meta(obj), _meta(old))
                meta = _meta(obj)
                self._precondition(rt, old, meta.get("resourceVersion"), required_rv=False)
                new = self._merge_server_fields(rt, old, obj, subresource)
                result, removed = self._commit_update(txn, rt, version, key, old, new, opts)
        if not opts.dry_run:
            self._after_commit(rt, result, removed=removed)
        return WriteResult(self.serve(rt, version, result), created=created, warnings=warnings)

    def _apply_patch(
        self, rt: ResourceType, current: dict[str, Any], content_type: str, body: Any, name: str
    ) -> Any:
        try:
            if content_type == MERGE_PATCH:
                return merge_patch(current, body)
            if content_type == JSON_PATCH:
                return json_patch(current, body)
            if content_type == STRATEGIC_MERGE_PATCH:
                return strategic_merge_patch(current, body)
            return self._server_side_apply(rt, current, body, name)
        except PatchError as exc:
            if exc.malformed:
                raise err.bad_request(str(exc)) from exc
            raise err.unprocessable(str(exc)) from exc

    @staticmethod
    def _check_apply_body(rt: ResourceType, body: Any, name: str) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise err.bad_request("error decoding YAML: the apply configuration must be an object")
        for required in ("apiVersion", "kind"):
            if not body.get(required):
                raise err.bad_request(f"invalid object type: {required} must be set")
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        if meta.get("name") and meta["name"] != name:
            raise _name_mismatch(meta["name"], name)
        if meta.get("managedFields"):
            raise err.bad_request("metadata.managedFields must be nil")
        return body

    def _server_side_apply(
        self, rt: ResourceType, current: dict[str, Any], body: Any, name: str
    ) -> dict[str, Any]:
        # Simplified apply: the configuration is merged into the live object (maps merge, lists
        # are replaced as a whole, which is the `atomic` default of custom resources). Field
        # ownership (managedFields) and conflicts between managers are not tracked.
        config = self._check_apply_body(rt, body, name)
        return merge_patch(current, _drop_nulls(config))

    def _prepare_apply_create(
        self,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        name: str,
        body: Any,
        opts: WriteOptions,
    ) -> tuple[dict[str, Any], list[str]]:
        config = copy.deepcopy(self._check_apply_body(rt, body, name))
        _meta(config)["name"] = name
        return self._prepare_create(rt, version, namespace, _drop_nulls(config), opts)

    # --- delete ---------------------------------------------------------------------------

    def delete(
        self,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        name: str,
        options: dict[str, Any] | None,
        dry_run: bool = False,
    ) -> DeleteResult:
        """DELETE: remove now, or mark for deletion while finalizers remain."""
        options = options or {}
        preconditions = options.get("preconditions") or {}
        policy = options.get("propagationPolicy") or (
            "Orphan" if options.get("orphanDependents") else "Background"
        )
        if policy not in ("Orphan", "Background", "Foreground"):
            raise err.invalid_object(
                "DeleteOptions",
                "",
                "",
                [
                    err.not_supported(
                        "propagationPolicy", policy, ["Foreground", "Background", "Orphan"]
                    )
                ],
            )
        key = self.key(rt, namespace, name)
        removed = False
        with self.store.transaction() as txn:
            old = txn.get(key)
            if old is None:
                raise err.not_found(rt.plural, rt.group, name)
            meta = _meta(old)
            if rt is NAMESPACES and name in PROTECTED_NAMESPACES:
                raise err.forbidden_error(
                    f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                    "namespaces",
                    "",
                    name,
                )
            uid = preconditions.get("uid")
            if uid and uid != meta.get("uid"):
                raise err.conflict(
                    rt.plural,
                    rt.group,
                    name,
                    f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                    f"{meta.get('uid')}",
                )
            wanted_rv = preconditions.get("resourceVersion")
            if wanted_rv and wanted_rv != meta.get("resourceVersion"):
                raise err.conflict(
                    rt.plural,
                    rt.group,
                    name,
                    f"Precondition failed: ResourceVersion in precondition: {wanted_rv}, "
                    f"ResourceVersion in meta: {meta.get('resourceVersion')}",
                )
            if dry_run:
                return DeleteResult(self._success(rt, old), deleted=True)
            if rt is NAMESPACES:
                obj, removed = self._delete_namespace(txn, old)
            elif meta.get("finalizers"):
                obj = self._mark_deleting(txn, rt, key, old)
            else:
                obj = self._remove(txn, rt, key, old, policy)
                removed = True
        self._after_commit(rt, obj, removed=removed)
        if removed and rt is not NAMESPACES:
            return DeleteResult(self._success(rt, obj), deleted=True)
        return DeleteResult(self.serve(rt, version, obj), deleted=removed)

    @staticmethod
    def _success(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        meta = _meta(obj)
        details = StatusDetails(
            name=meta.get("name"), group=rt.group, kind=rt.plural, uid=meta.get("uid")
        )
        return Status(status="Success", details=details).to_dict()

    def _mark_deleting(
        self, txn: Transaction, rt: ResourceType, key: Key, old: dict[str, Any]
    ) -> dict[str, Any]:
        if _meta(old).get("deletionTimestamp"):
            return old
        new = copy.deepcopy(old)
        meta = _meta(new)
        meta["deletionTimestamp"] = now_rfc3339()
        meta["deletionGracePeriodSeconds"] = 0
        meta["generation"] = int(meta.get("generation") or 0) + 1
        if rt.prepare is not None:
            rt.prepare(new, old)
        return txn.put(key, new, old)

    def _remove(
        self, txn: Transaction, rt: ResourceType | None, key: Key, obj: dict[str, Any], policy: str
    ) -> dict[str, Any]:
        """Delete an object now, then what depends on it (dependents, a CRD's objects)."""
        txn.delete(key, obj)
        uid = _meta(obj).get("uid")
        if uid:
            self._collect_dependents(txn, uid, policy)
        if rt is CUSTOM_RESOURCE_DEFINITIONS:
            spec = obj.get("spec") or {}
            group, plural = spec.get("group", ""), (spec.get("names") or {}).get("plural", "")
            for item in txn.list(group, plural):
                item_meta = _meta(item)
                txn.delete(
                    Key(group, plural, item_meta.get("namespace", ""), item_meta["name"]), item
                )
        if key.namespace:
            self._finish_namespace_if_empty(txn, key.namespace)
        return obj

    def _collect_dependents(self, txn: Transaction, owner_uid: str, policy: str) -> None:
        """Background garbage collection: dependents whose owners are all gone are deleted."""
        for key, dependent in txn.find_mentioning(owner_uid):
            if owner_uid not in _owner_uids(dependent):
                continue
            current = txn.get(key)
            if current is None:
                continue
            updated = copy.deepcopy(current)
            meta = _meta(updated)
            meta["ownerReferences"] = [
                ref for ref in meta.get("ownerReferences") or [] if ref.get("uid") != owner_uid
            ]
            if not meta["ownerReferences"]:
                meta.pop("ownerReferences")
            rt = self.registry.get(key.group, key.resource)
            if policy == "Orphan" or meta.get("ownerReferences"):
                txn.put(key, updated, current)
            elif _meta(current).get("finalizers"):
                if rt is not None:
                    self._mark_deleting(txn, rt, key, current)
            else:
                log.debug("garbage collecting %s (owner %s gone)", key, owner_uid)
                self._remove(txn, rt, key, current, policy)

    def _delete_namespace(
        self, txn: Transaction, ns: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        name = _meta(ns)["name"]
        ns_key = Key("", "namespaces", "", name)
        ns = self._mark_deleting(txn, NAMESPACES, ns_key, ns)
        for key in txn.keys_in_namespace(name):
            obj = txn.get(key)
            if obj is None:
                continue
            rt = self.registry.get(key.group, key.resource)
            if _meta(obj).get("finalizers"):
                if rt is not None:
                    self._mark_deleting(txn, rt, key, obj)
            else:
                self._remove(txn, rt, key, obj, "Background")
        return ns, txn.get(ns_key) is None

    def _finish_namespace_if_empty(self, txn: Transaction, namespace: str) -> None:
        ns_key = Key("", "namespaces", "", namespace)
        ns = txn.get(ns_key)
        if ns is None or not _meta(ns).get("deletionTimestamp"):
            return
        if not txn.keys_in_namespace(namespace):
            txn.delete(ns_key, ns)

    def delete_collection(
        self,
        rt: ResourceType,
        version: str,
        namespace: str | None,
        list_opts: ListOptions,
        options: dict[str, Any] | None,
        dry_run: bool = False,
    ) -> list[dict[str, Any]]:
        """DELETE on a collection: delete every matching object; returns their last states."""
        items, _ = self.list(
            rt, version, namespace, ListOptions(list_opts.label_selector, list_opts.field_selector)
        )
        deleted = []
        for item in items:
            meta = _meta(item)
            try:
                self.delete(rt, version, meta.get("namespace"), meta["name"], options, dry_run)
            except ApiError as exc:
                if exc.code != 404:
                    raise
                continue
            deleted.append(item)
        return deleted

    # --- start-up -------------------------------------------------------------------------

    def ensure_namespaces(self, names: tuple[str, ...]) -> None:
        """Create the namespaces a fresh server has."""
        for name in names:
            if self.store.get(Key("", "namespaces", "", name)) is None:
                self.create(NAMESPACES, "v1", None, {"metadata": {"name": name}}, WriteOptions())

    def install_crds(self, crds: tuple[dict[str, Any], ...]) -> None:
        """Store the given CRDs (creating or updating them) and serve every stored CRD."""
        for crd in crds:
            name = (crd.get("metadata") or {}).get("name", "")
            existing = self.store.get(
                Key(CUSTOM_RESOURCE_DEFINITIONS.group, CUSTOM_RESOURCE_DEFINITIONS.plural, "", name)
            )
            body = copy.deepcopy(crd)
            opts = WriteOptions(field_validation="Warn")
            if existing is None:
                result = self.create(CUSTOM_RESOURCE_DEFINITIONS, "v1", None, body, opts)
            else:
                _meta(body)["resourceVersion"] = _meta(existing)["resourceVersion"]
                for keep in ("labels", "annotations"):
                    if keep not in _meta(body) and keep in _meta(existing):
                        _meta(body)[keep] = _meta(existing)[keep]
                result = self.update(CUSTOM_RESOURCE_DEFINITIONS, "v1", None, name, body, opts)
            for warning in result.warnings:
                log.warning("built-in CRD field ignored: %s", warning, extra={"crd": name})
        for stored in self.store.list(
            CUSTOM_RESOURCE_DEFINITIONS.group, CUSTOM_RESOURCE_DEFINITIONS.plural
        ):
            try:
                self.registry.put(resource_type_from_crd(stored))
            except (ValueError, KeyError) as exc:
                log.error("stored CRD %s cannot be served: %s", _meta(stored).get("name"), exc)


def _check_immutable(
    rt: ResourceType, name: str, meta: dict[str, Any], old_meta: dict[str, Any]
) -> None:
    """422 when a patch changes the name, namespace or uid (a missing uid keeps the old one).

    Other server-owned fields (creationTimestamp, generation, deletionTimestamp) are reset to
    the stored values afterwards, as the real server's `BeforeUpdate` does.
    """
    problems = [
        err.invalid(f"metadata.{field_name}", meta.get(field_name), "field is immutable")
        for field_name in ("name", "namespace", "uid")
        if (field_name != "uid" or meta.get("uid"))
        and meta.get(field_name, "") != old_meta.get(field_name, "")
    ]
    if problems:
        raise err.invalid_object(rt.kind, rt.group, name, problems)


def _name_mismatch(body_name: str, url_name: str) -> ApiError:
    return err.bad_request(
        f"the name of the object ({body_name}) does not match the name on the URL ({url_name})"
    )


def _namespace_mismatch() -> ApiError:
    return err.bad_request(
        "the namespace of the provided object does not match the namespace sent on the request"
    )


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value
