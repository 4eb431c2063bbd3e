"""The knowledge base's HTTP API: upstream Sedna's routes, answered from the store.

Upstream routes (prefix ``/knowledgebase``), kept for compatibility:
``POST /update`` (the index, as JSON or as the multipart field ``task``), ``POST /update/status``
(``{"tasks": "a,b", "status": 0|1}``), ``POST /query`` (upstream: a stub; here what the
knowledge base holds), ``GET /file/download?files=&name=``, ``POST /file/upload`` (multipart
``file``). Added: ``GET /query?kb=``, ``GET /summary?kb=`` (``status.knowledgeBase``),
``GET /index?kb=``, ``GET /kbs``, ``GET|POST /metric`` and ``POST /metric_value`` (seed 004's
custom metrics), ``/metrics`` and ``/healthz``. Every error is JSON ``{"error", "field"}``
with a 4xx status naming what is wrong; a pickled index is refused.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import logging
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError

from broker import boundedjson
from kb.metrics import KBMetrics
from kb.models import DEFAULT_KB, KBIndex, KBQuery, MetricDefinition, MetricValue, StatusUpdate
from kb.settings import KBSettings
from kb.store import KnowledgeStore, StoreError, UnknownEntity

log = logging.getLogger(__name__)

PREFIX = "/knowledgebase"
INDEX_FILE = "index.json"
_M = TypeVar("_M", bound=BaseModel)
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


class RequestError(Exception):
    """A request refused with ``status``; ``field`` names the offending part."""

    def __init__(self, status: HTTPStatus, field: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


def index_path(kb: str) -> str:
    """The download path of ``kb``'s index, relative to ``/knowledgebase`` (upstream's answer)."""
    query = {"files": INDEX_FILE, "name": INDEX_FILE}
    if kb != DEFAULT_KB:
        query["kb"] = kb
    return "/file/download?" + urllib.parse.urlencode(query)


class KBServer:
    """The knowledge base service: store, HTTP API and metrics, served in a background thread."""

    def __init__(self, settings: KBSettings) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir.resolve()
        self.files_dir = self.data_dir / "files"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.store = KnowledgeStore(self.data_dir / "kb.sqlite3")
        self._server = ThreadingHTTPServer((settings.host, settings.port), _make_handler(self))
        self._server.daemon_threads = True
        self.metrics = KBMetrics(self.store, self.url, settings.node_name)
        self._thread: threading.Thread | None = None
        self._get: dict[str, Callable[[dict[str, str]], Any]] = {
            "/query": lambda q: self.store.describe(_kb(q)),
            "/summary": lambda q: self.store.summary(_kb(q)).model_dump(),
            "/index": lambda q: self.store.index(_kb(q)),
            "/kbs": lambda q: self.store.kbs(),
            "/metric": lambda q: self.store.custom_metrics(),
        }
        self._post: dict[str, Callable[[bytes, str], Any]] = {
            "/update": self._update,
            "/update/status": self._update_status,
            "/query": lambda body, ctype: self.store.describe(_parse(KBQuery, body, ctype).kb),
            "/file/upload": self._upload,
            "/metric": self._define_metric,
            "/metric_value": self._metric_value,
        }

    @property
    def port(self) -> int:
        """The port actually bound."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL workers get in ``KB_SERVER``."""
        return f"http://{self.settings.host}:{self.port}"

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="kb-server",
            daemon=True,
        )
        self._thread.start()
        log.info("knowledge base listening", extra={"url": self.url, "data": str(self.data_dir)})

    def stop(self) -> None:
        """Stop serving and close the database."""
        self._server.shutdown()
        self._server.server_close()
        self.store.close()

    # -- routes ------------------------------------------------------------------------------

    def _update(self, body: bytes, ctype: str) -> Any:
        if ctype.startswith("multipart/"):
            body = _multipart_field(body, ctype, "task")
            ctype = "application/json"
        if body[:1] == b"\x80":
            raise RequestError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                "task",
                "the index must be JSON; pickled indexes are refused (they run code when loaded)",
            )
        index = _parse(KBIndex, body, ctype)
        version = self.store.apply_index(index)
        log.info("index updated", extra={"kb": index.kb, "version": version})
        return index_path(index.kb)

    def _update_status(self, body: bytes, ctype: str) -> Any:
        update = _parse(StatusUpdate, body, ctype)
        self.store.set_deploy(update)
        return index_path(update.kb)

    def _upload(self, body: bytes, ctype: str) -> Any:
        if not ctype.startswith("multipart/"):
            raise RequestError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "file", "send the file as multipart field 'file'"
            )
        name, data = _multipart_file(body, ctype, "file")
        _check_file_name(name)
        target = self.files_dir / name
        partial = target.with_name(f".{name}.part")
        partial.write_bytes(data)
        partial.replace(target)
        return "/file/download?" + urllib.parse.urlencode({"files": name, "name": name})

    def _define_metric(self, body: bytes, ctype: str) -> Any:
        definition = _parse(MetricDefinition, body, ctype)
        self.store.define_metric(definition)
        return {"name": definition.name, "label": definition.label}

    def _metric_value(self, body: bytes, ctype: str) -> Any:
        value = _parse(MetricValue, body, ctype)
        self.store.set_metric_value(value)
        return {"metric": value.metric, "label_value": value.label_value, "value": value.value}

    def download(self, query: dict[str, str]) -> tuple[bytes, str]:
        """The bytes of a stored file and its content type."""
        name = query.get("files") or query.get("name")
        if not name:
            raise RequestError(HTTPStatus.BAD_REQUEST, "files", "name the file to download")
        _check_file_name(name)
        if name == INDEX_FILE:
            return json.dumps(self.store.index(_kb(query))).encode(), "application/json"
        path = self.files_dir / name
        if not path.is_file():
            raise RequestError(HTTPStatus.NOT_FOUND, "files", f"no file {name!r}")
        return path.read_bytes(), "application/octet-stream"

    # -- dispatch ----------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, str], body: bytes, ctype: str):
        """Route one request; returns (status, content type, body bytes)."""
        if method == "GET" and path == "/healthz":
            return HTTPStatus.OK, "text/plain", b"ok\n"
        if method == "GET" and path == "/metrics":
            return HTTPStatus.OK, CONTENT_TYPE_LATEST, generate_latest(self.metrics.registry)
        if not path.startswith(PREFIX):
            raise RequestError(HTTPStatus.NOT_FOUND, "path", f"no route {path}")
        route = path[len(PREFIX) :].rstrip("/") or "/"
        if method == "GET" and route == "/file/download":
            data, content_type = self.download(query)
            return HTTPStatus.OK, content_type, data
        table: dict[str, Callable[..., Any]] = self._get if method == "GET" else self._post
        handler = table.get(route)
        if handler is None:
            other = self._post if method == "GET" else self._get
            if route in other or route == "/file/download":
                raise RequestError(
                    HTTPStatus.METHOD_NOT_ALLOWED, "method", f"{method} not allowed on {path}"
                )
            raise RequestError(HTTPStatus.NOT_FOUND, "path", f"no route {path}")
        result = handler(query) if method == "GET" else handler(body, ctype)
        return HTTPStatus.OK, "application/json", json.dumps(result).encode()


def _kb(query: dict[str, str]) -> str:
    kb = query.get("kb", DEFAULT_KB)
    try:
        return KBQuery(kb=kb).kb
    except ValidationError as exc:
        raise RequestError(HTTPStatus.BAD_REQUEST, "kb", _describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err.get("loc", ())) or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid value')}")
    return "; ".join(parts)


# The handler caps the size; nesting is capped here, before pydantic's recursion sees it.
_BODY_LIMITS = boundedjson.JsonLimits(max_bytes=1 << 40)


def _parse(model: type[_M], body: bytes, ctype: str) -> _M:
    if ctype and not ctype.startswith(("application/json", "text/plain")):
        raise RequestError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "Content-Type", f"expected JSON, got {ctype}"
        )
    try:
        data = boundedjson.loads(body or b"null", _BODY_LIMITS)
    except boundedjson.BodyError as exc:
        raise RequestError(HTTPStatus.BAD_REQUEST, "body", f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RequestError(HTTPStatus.BAD_REQUEST, "body", "expected a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in first.get("loc", ())) or "body"
        raise RequestError(HTTPStatus.UNPROCESSABLE_ENTITY, field, _describe(exc)) from None


def _multipart_parts(body: bytes, ctype: str) -> list[Any]:
    head = f"Content-Type: {ctype}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise RequestError(HTTPStatus.BAD_REQUEST, "body", "malformed multipart body")
    return list(message.iter_parts())


def _multipart_file(body: bytes, ctype: str, field: str) -> tuple[str, bytes]:
    for part in _multipart_parts(body, ctype):
        if part.get_param("name", header="content-disposition") == field:
            filename = part.get_filename() or ""
            return Path(filename).name if filename else "", part.get_payload(decode=True) or b""
    raise RequestError(HTTPStatus.UNPROCESSABLE_ENTITY, field, f"multipart field {field!r} missing")


def _multipart_field(body: bytes, ctype: str, field: str) -> bytes:
    return _multipart_file(body, ctype, field)[1]


def _check_file_name(name: str) -> None:
    if not _FILE_NAME.match(name) or ".." in name:
        raise RequestError(
            HTTPStatus.BAD_REQUEST, "files", f"{name!r} is not a plain file name (no paths)"
        )


def _make_handler(kb: KBServer) -> type[BaseHTTPRequestHandler]:
    max_body = kb.settings.max_body

    class Handler(BaseHTTPRequestHandler):
        disable_nagle_algorithm = True
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, method: str) -> None:
            started = time.perf_counter()
            parsed = urllib.parse.urlsplit(self.path)
            route = parsed.path
            query = dict(urllib.parse.parse_qsl(parsed.query))
            try:
                body = self._body() if method == "POST" else b""
                ctype = (self.headers.get("Content-Type") or "").strip()
                status, content_type, data = kb.handle(method, route, query, body, ctype)
            except RequestError as exc:
                status, content_type, data = exc.status, "application/json", _error(exc)
            except UnknownEntity as exc:
                error = RequestError(HTTPStatus.NOT_FOUND, exc.field, str(exc))
                status, content_type, data = error.status, "application/json", _error(error)
            except StoreError as exc:
                error = RequestError(HTTPStatus.UNPROCESSABLE_ENTITY, exc.field, str(exc))
                status, content_type, data = error.status, "application/json", _error(error)
            except Exception:
                log.exception("knowledge base request failed", extra={"path": route})
                error = RequestError(HTTPStatus.INTERNAL_SERVER_ERROR, "", "internal error")
                status, content_type, data = error.status, "application/json", _error(error)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            label = route if status != HTTPStatus.NOT_FOUND or route in _KNOWN else "other"
            kb.metrics.requests.labels(route=label, code=str(int(status))).inc()
            kb.metrics.latency.labels(route=label).observe(time.perf_counter() - started)

        def _body(self) -> bytes:
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                raise RequestError(HTTPStatus.LENGTH_REQUIRED, "Content-Length", "required")
            size = int(length)
            if size > max_body:
                self.close_connection = True
                raise RequestError(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body", f"{size} bytes > {max_body}"
                )
            return self.rfile.read(size)

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


_KNOWN = {
    f"{PREFIX}{r}"
    for r in (
        "/update",
        "/update/status",
        "/query",
        "/summary",
        "/index",
        "/kbs",
        "/metric",
        "/metric_value",
        "/file/upload",
        "/file/download",
    )
} | {"/metrics", "/healthz"}


def _error(exc: RequestError) -> bytes:
    return json.dumps({"error": str(exc), "field": exc.field}).encode()
