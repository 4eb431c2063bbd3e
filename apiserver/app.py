"""Request routing: paths and verbs to discovery, OpenAPI and object operations.

Independent of the socket layer: `ApiApp.handle(Request) -> Response`.
"""

from __future__ import annotations

import hmac
import json
import logging
import platform
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import yaml

from apiserver import discovery, protobuf
from apiserver import errors as err
from apiserver.audit import RequestLog
from apiserver.errors import ApiError
from apiserver.objects import (
    APPLY_PATCH,
    ListOptions,
    ObjectService,
    WriteOptions,
    WriteResult,
)
from apiserver.openapi import (
    OPENAPI_V2_JSON,
    OPENAPI_V2_PROTOBUF,
    OPENAPI_V2_PROTOBUF_TYPE,
    OpenApiDocuments,
)
from apiserver.podlogs import PodLogs
from apiserver.registry import Registry
from apiserver.resources import ResourceType
from apiserver.selectors import FieldSelector, LabelSelector, SelectorError
from apiserver.store import CommitFailed, StoreClosed
from apiserver.table import table
from apiserver.watch import Watch, WatchRequest
from broker import boundedjson

log = logging.getLogger(__name__)

KUBERNETES_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.5"}
# Paths a client may read without a token (as the real server's system:public-info-viewer).
PUBLIC_PATHS = frozenset({"/version", "/healthz", "/livez", "/readyz"})
JSON = "application/json"
# The HTTP layer caps the bytes; nesting is capped here, before any recursive code runs.
BODY_LIMITS = boundedjson.JsonLimits(max_bytes=32 * 1024 * 1024, max_depth=100)
BODY_MEDIA_TYPES = (
    "application/json",
    "application/yaml",
    protobuf.MEDIA_TYPE + " (Namespace only)",
)


@dataclass
class Request:
    """An HTTP request as the app sees it."""

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    client_gone: Callable[[], bool] = lambda: False

    def header(self, name: str) -> str:
        """A header value ("" when absent), case-insensitive."""
        value = self.headers.get(name)
        if value is None:
            lowered = name.lower()
            for key, item in self.headers.items():
                if key.lower() == lowered:
                    return item
            return ""
        return value


@dataclass
class Response:
    """An HTTP response: a body, or a stream of chunks (watches)."""

    status: int
    body: bytes = b""
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)
    stream: Iterator[bytes] | None = None


def json_bytes(value: Any) -> bytes:
    """Compact JSON."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def json_response(status: int, value: Any, **headers: str) -> Response:
    """A JSON response."""
    return Response(status, json_bytes(value), JSON, dict(headers))


def error_response(error: ApiError) -> Response:
    """A `Status` response for an error."""
    return json_response(error.code, error.status().to_dict())


def _warning_header(warnings: list[str]) -> dict[str, str]:
    if not warnings:
        return {}
    escaped = [w.replace("\\", "\\\\").replace('"', '\\"') for w in warnings]
    return {"Warning": ", ".join(f'299 - "{w}"' for w in escaped)}


class _DuplicateKeys:
    """An `object_pairs_hook` that records duplicate keys (reported under Strict validation)."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def __call__(self, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                self.found.append(key)
            result[key] = value
        return result


def _wants_table(accept: str) -> bool:
    return "as=table" in accept.replace(" ", "").lower()


def _bool(value: str | None) -> bool:
    return (value or "").lower() in ("true", "1")


@dataclass(frozen=True)
class _Target:
    rt: ResourceType
    version: str
    namespace: str | None
    name: str | None
    subresource: str | None


class ApiApp:
    """The Kubernetes-compatible API, over a registry and an object service."""

    def __init__(
        self,
        registry: Registry,
        service: ObjectService,
        *,
        token: str | None,
        stopping: threading.Event,
        server_address: Callable[[], str],
        request_log: RequestLog | None = None,
        node_log_secret: str | None = None,
    ) -> None:
        self.registry = registry
        self.pod_logs = PodLogs(registry, service, node_log_secret)
        self.request_log = request_log
        self.service = service
        self.token = token
        self.stopping = stopping
        self.server_address = server_address
        self.openapi = OpenApiDocuments(registry)

    # --- entry point ----------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Answer one request; never raises."""
        try:
            if not self._authorized(request):
                raise err.unauthorized()
            if self.request_log is not None:
                self.request_log.record(
                    request.method, request.path, request.query, request.header("User-Agent")
                )
            return self._route(request)
        except ApiError as error:
            return error_response(error)
        except SelectorError as exc:
            return error_response(err.bad_request(str(exc)))
        except CommitFailed as exc:
            return error_response(ApiError(500, "InternalError", f"Internal error occurred: {exc}"))
        except StoreClosed:
            return error_response(
                ApiError(503, "ServiceUnavailable", "the server is shutting down")
            )
        except Exception as exc:
            log.exception("request failed", extra={"method": request.method, "path": request.path})
            return error_response(ApiError(500, "InternalError", f"Internal error occurred: {exc}"))

    def _authorized(self, request: Request) -> bool:
        if self.token is None or request.path.rstrip("/") in PUBLIC_PATHS:
            return True
        header = request.header("Authorization")
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(credential.strip().encode(), self.token.encode())

    # --- routing --------------------------------------------------------------------------

    def _route(self, request: Request) -> Response:
        parts = [unquote(p) for p in request.path.split("/") if p]
        if not parts:
            return json_response(
                200, {"paths": ["/api", "/api/v1", "/apis", "/openapi/v3", "/version"]}
            )
        head = parts[0]
        if parts == ["version"]:
            return json_response(200, self._version())
        if head in ("healthz", "livez", "readyz"):
            return Response(200, b"ok", "text/plain; charset=utf-8")
        if head == "openapi":
            return self._openapi(request, parts[1:])
        if head == "api":
            if len(parts) == 1:
                return self._discovery_root(request, core=True)
            if parts[1] != "v1":
                raise err.path_not_found()
            return self._group_version(request, "", "v1", parts[2:])
        if head == "apis":
            if len(parts) == 1:
                return self._discovery_root(request, core=False)
            if len(parts) == 2:
                group_doc = discovery.api_group(self.registry, parts[1])
                if group_doc is None:
                    raise err.path_not_found()
                return json_response(200, group_doc)
            return self._group_version(request, parts[1], parts[2], parts[3:])
        raise err.path_not_found()

    @staticmethod
    def _version() -> dict[str, str]:
        machine = {"x86_64": "amd64", "aarch64": "arm64"}.get(
            platform.machine(), platform.machine()
        )
        return {
            **KUBERNETES_VERSION,
            "gitCommit": "",
            "gitTreeState": "clean",
            "buildDate": "",
            "goVersion": f"python{sys.version_info.major}.{sys.version_info.minor}",
            "compiler": "sedna-py",
            "platform": f"{sys.platform}/{machine}",
        }

    def _discovery_root(self, request: Request, *, core: bool) -> Response:
        api_version = discovery.aggregated_version(request.header("Accept"))
        if api_version is not None:
            body = json_bytes(
                discovery.aggregated(self.registry, core=core, api_version=api_version)
            )
            return Response(
                200, body, discovery.aggregated_content_type(api_version), {"Vary": "Accept"}
            )
        if core:
            return json_response(200, discovery.api_versions(self.server_address()))
        return json_response(200, discovery.api_group_list(self.registry))

    def _openapi(self, request: Request, rest: list[str]) -> Response:
        if rest == ["v2"]:
            if "protobuf" in request.header("Accept"):
                return Response(200, OPENAPI_V2_PROTOBUF, OPENAPI_V2_PROTOBUF_TYPE)
            return json_response(200, OPENAPI_V2_JSON)
        if rest == ["v3"]:
            return json_response(
                200, self.openapi.index(), **{"Cache-Control": "no-cache, private"}
            )
        if rest and rest[0] == "v3":
            found = self.openapi.document("/".join(rest[1:]))
            if found is not None:
                body, digest = found
                return Response(
                    200, body, JSON, {"Cache-Control": "public, immutable", "Etag": f'"{digest}"'}
                )
        raise err.path_not_found()

    def _group_version(
        self, request: Request, group: str, version: str, rest: list[str]
    ) -> Response:
        if not rest:
            doc = discovery.api_resource_list(self.registry, group, version)
            if doc is None:
                raise err.path_not_found()
            return json_response(200, doc)
        target = self._resolve(group, version, rest)
        return self._dispatch(request, target)

    def _resolve(self, group: str, version: str, rest: list[str]) -> _Target:
        if rest[0] == "namespaces" and len(rest) >= 3:
            rt = self.registry.lookup(group, version, rest[2])
            if rt is not None and rt.namespaced and len(rest) <= 5:
                name = rest[3] if len(rest) > 3 else None
                sub = rest[4] if len(rest) > 4 else None
                return self._checked(_Target(rt, version, rest[1], name, sub))
        rt = self.registry.lookup(group, version, rest[0])
        if rt is None or len(rest) > 3:
            raise err.path_not_found()
        name = rest[1] if len(rest) > 1 else None
        if rt.namespaced and name is not None:
            raise err.path_not_found()
        sub = rest[2] if len(rest) > 2 else None
        return self._checked(_Target(rt, version, None, name, sub))

    @staticmethod
    def _checked(target: _Target) -> _Target:
        is_pod_log = target.subresource == "log" and (target.rt.group, target.rt.plural) == (
            "",
            "pods",
        )
        if target.subresource is not None and not (
            (target.subresource == "status" and target.rt.status) or is_pod_log
        ):
            raise err.path_not_found()
        return target

    # --- verbs ----------------------------------------------------------------------------

    def _dispatch(self, request: Request, target: _Target) -> Response:
        method = request.method
        if target.name is None:
            if method == "GET":
                if _bool(request.query.get("watch")):
                    return self._watch(request, target)
                return self._list(request, target)
            if method == "POST" and (target.namespace is not None or not target.rt.namespaced):
                return self._create(request, target)
            if method == "DELETE":
                return self._delete_collection(request, target)
            raise err.method_not_allowed(method)
        if target.subresource == "log":
            if method != "GET":
                raise err.method_not_allowed(method)
            content_type, chunks = self.pod_logs.read(
                target.namespace or "default", target.name, dict(request.query), request.client_gone
            )
            return Response(200, content_type=content_type, stream=chunks)
        if method == "GET":
            obj = self.service.get(target.rt, target.version, target.namespace, target.name)
            return self._object_response(request, target, obj)
        if method == "PUT":
            result = self.service.update(
                target.rt,
                target.version,
                target.namespace,
                target.name,
                *self._body(request, target),
                target.subresource,
            )
            return self._write_response(request, target, result)
        if method == "PATCH":
            return self._patch(request, target)
        if method == "DELETE" and target.subresource is None:
            return self._delete(request, target)
        raise err.method_not_allowed(method)

    def _write_options(self, request: Request, duplicates: tuple[str, ...] = ()) -> WriteOptions:
        dry_run = request.query.get("dryRun")
        if dry_run not in (None, "", "All"):
            raise err.bad_request(
                f'dryRun: Unsupported value: "{dry_run}": supported values: "All"'
            )
        validation = request.query.get("fieldValidation") or "Warn"
        if validation not in ("Ignore", "Warn", "Strict"):
            raise err.bad_request(
                f'fieldValidation: Unsupported value: "{validation}": supported values: '
                '"Ignore", "Strict", "Warn"'
            )
        return WriteOptions(
            dry_run=dry_run == "All",
            field_validation=validation,
            duplicate_fields=duplicates,
        )

    def _parse_body(self, request: Request, target: _Target | None) -> tuple[Any, tuple[str, ...]]:
        content_type = request.header("Content-Type").split(";")[0].strip().lower()
        if not request.body.strip():
            raise err.bad_request("the request body is empty")
        if content_type == protobuf.MEDIA_TYPE:
            try:
                return protobuf.decode(request.body), ()
            except protobuf.ProtobufError as exc:
                raise err.unsupported_media_type(BODY_MEDIA_TYPES, str(exc)) from exc
        text = request.body.decode("utf-8", errors="replace")
        if "yaml" in content_type:
            try:
                value = yaml.safe_load(text)
            except RecursionError:
                raise err.bad_request(
                    f"error decoding YAML: nests deeper than {BODY_LIMITS.max_depth} levels"
                ) from None
            except yaml.YAMLError as exc:
                if content_type != APPLY_PATCH:
                    raise err.bad_request(f"error converting YAML to JSON: {exc}") from exc
                raise err.bad_request(f"error decoding YAML: {exc}") from exc
            try:
                boundedjson.check_shape(value, BODY_LIMITS, source_bytes=len(request.body))
            except boundedjson.BodyError as exc:
                raise err.bad_request(f"error decoding YAML: {exc}") from None
            return value, ()
        duplicates = _DuplicateKeys()
        try:
            value = boundedjson.loads(text, BODY_LIMITS, object_pairs_hook=duplicates)
        except boundedjson.BodyError as exc:
            kind = f"{target.rt.kind} " if target else ""
            raise err.bad_request(f"{kind}couldn't get version/kind; {exc}") from None
        return value, tuple(duplicates.found)

    def _body(self, request: Request, target: _Target) -> tuple[Any, WriteOptions]:
        body, duplicates = self._parse_body(request, target)
        return body, self._write_options(request, duplicates)

    def _list_options(self, request: Request) -> ListOptions:
        limit_text = request.query.get("limit")
        limit = None
        if limit_text:
            if not limit_text.isdigit():
                raise err.bad_request(f'limit: Invalid value: "{limit_text}": must be an integer')
            limit = int(limit_text) or None
        return ListOptions(
            label_selector=LabelSelector.parse(request.query.get("labelSelector")),
            field_selector=FieldSelector.parse(request.query.get("fieldSelector")),
            limit=limit,
            continue_token=request.query.get("continue") or None,
        )

    def _object_response(
        self,
        request: Request,
        target: _Target,
        obj: dict[str, Any],
        status: int = 200,
        warnings: list[str] | None = None,
    ) -> Response:
        headers = _warning_header(warnings or [])
        if _wants_table(request.header("Accept")):
            include = request.query.get("includeObject") or "Metadata"
            body = table(
                target.rt,
                target.version,
                [obj],
                include_object=include,
                list_metadata={"resourceVersion": obj["metadata"].get("resourceVersion", "")},
            )
            return json_response(status, body, **headers)
        return json_response(status, obj, **headers)

    def _write_response(self, request: Request, target: _Target, result: WriteResult) -> Response:
        status = 201 if result.created else 200
        return self._object_response(request, target, result.obj, status, result.warnings)

    def _list(self, request: Request, target: _Target) -> Response:
        items, metadata = self.service.list(
            target.rt, target.version, target.namespace, self._list_options(request)
        )
        if _wants_table(request.header("Accept")):
            include = request.query.get("includeObject") or "Metadata"
            return json_response(
                200,
                table(
                    target.rt, target.version, items, include_object=include, list_metadata=metadata
                ),
            )
        return json_response(
            200,
            {
                "apiVersion": target.rt.api_version(target.version),
                "kind": target.rt.list_kind,
                "metadata": metadata,
                "items": items,
            },
        )

    def _create(self, request: Request, target: _Target) -> Response:
        body, opts = self._body(request, target)
        result = self.service.create(target.rt, target.version, target.namespace, body, opts)
        return self._write_response(request, target, result)

    def _patch(self, request: Request, target: _Target) -> Response:
        assert target.name is not None
        content_type = request.header("Content-Type").split(";")[0].strip().lower()
        if content_type not in self.service.patch_media_types(target.rt):
            raise err.unsupported_media_type(self.service.patch_media_types(target.rt))
        body, opts = self._body(request, target)
        if content_type == APPLY_PATCH and not request.query.get("fieldManager"):
            raise err.bad_request(
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is '
                "required for apply patch"
            )
        result = self.service.patch(
            target.rt,
            target.version,
            target.namespace,
            target.name,
            content_type,
            body,
            opts,
            target.subresource,
        )
        return self._write_response(request, target, result)

    def _delete_options(self, request: Request) -> tuple[dict[str, Any], bool]:
        options: dict[str, Any] = {}
        if request.body.strip():
            parsed, _ = self._parse_body(request, None)
            if not isinstance(parsed, dict):
                raise err.bad_request("DeleteOptions must be a JSON object")
            options = parsed
        for key in ("propagationPolicy",):
            if request.query.get(key):
                options[key] = request.query[key]
        dry_run = request.query.get("dryRun") == "All" or "All" in (options.get("dryRun") or [])
        return options, dry_run

    def _delete(self, request: Request, target: _Target) -> Response:
        assert target.name is not None
        options, dry_run = self._delete_options(request)
        result = self.service.delete(
            target.rt, target.version, target.namespace, target.name, options, dry_run
        )
        return json_response(200, result.body)

    def _delete_collection(self, request: Request, target: _Target) -> Response:
        options, dry_run = self._delete_options(request)
        deleted = self.service.delete_collection(
            target.rt,
            target.version,
            target.namespace,
            self._list_options(request),
            options,
            dry_run,
        )
        return json_response(
            200,
            {
                "apiVersion": target.rt.api_version(target.version),
                "kind": target.rt.list_kind,
                "metadata": {"resourceVersion": str(self.service.store.resource_version)},
                "items": deleted,
            },
        )

    def _watch(self, request: Request, target: _Target) -> Response:
        timeout_text = request.query.get("timeoutSeconds")
        timeout = None
        if timeout_text:
            try:
                timeout = float(timeout_text)
            except ValueError as exc:
                raise err.bad_request(f'timeoutSeconds: Invalid value: "{timeout_text}"') from exc
        send_initial = request.query.get("sendInitialEvents")
        watch_request = WatchRequest(
            rt=target.rt,
            version=target.version,
            namespace=target.namespace,
            options=self._list_options(request),
            resource_version=request.query.get("resourceVersion"),
            timeout_seconds=timeout,
            bookmarks=_bool(request.query.get("allowWatchBookmarks")),
            send_initial_events=None if send_initial is None else _bool(send_initial),
        )
        watch = Watch(self.service, watch_request, self.stopping, request.client_gone)
        as_table = _wants_table(request.header("Accept"))
        include = request.query.get("includeObject") or "Metadata"

        def lines() -> Iterator[bytes]:
            first = True
            for event in watch.events():
                if as_table and event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                    event = {
                        "type": event["type"],
                        "object": table(
                            target.rt,
                            target.version,
                            [event["object"]],
                            include_object=include,
                            with_columns=first,
                            list_metadata={
                                "resourceVersion": event["object"]["metadata"].get(
                                    "resourceVersion", ""
                                )
                            },
                        ),
                    }
                    first = False
                yield json_bytes(event) + b"\n"

        return Response(200, content_type=JSON, stream=lines())
