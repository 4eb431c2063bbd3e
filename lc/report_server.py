"""The worker report server: workers POST their ``info`` to their LC on 127.0.0.1.

Paths: ``POST /sedna/workers/<worker>/info`` (and the legacy ``/neptune/workers/<worker>/info``),
``GET /healthz``, ``GET /metrics`` (Prometheus). Accepted reports go to a callback, the upstream.
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from apis import WorkerReport
from broker import boundedjson
from lc.errors import InvalidReport
from lc.metrics import LCMetrics
from lc.reports import parse_report
from lc.workertokens import TOKEN_HEADER

log = logging.getLogger(__name__)

DEFAULT_PORT = 9100
DEFAULT_MAX_BODY = 1 << 20  # reports are small JSON objects; anything bigger is a mistake
_INFO_PATH = re.compile(r"^/(?:sedna|neptune)/workers/(?P<worker>[^/]+)/info/?$")

ReportCallback = Callable[[WorkerReport], None]
#: ``(namespace, worker, token or None) -> None`` to accept, else the reason for a 403.
Authorize = Callable[[str, str, str | None], str | None]


class ReportServer:
    """HTTP server taking worker reports; ``on_report`` is called once per accepted report.

    If ``on_report`` raises :class:`InvalidReport` (a report nothing can carry), the worker gets
    400 naming the field; any other failure is 503 so it can retry. ``port=0`` picks a free port.
    """

    def __init__(
        self,
        on_report: ReportCallback,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        metrics: LCMetrics | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        authorize: Authorize | None = None,
    ) -> None:
        self._on_report = on_report
        self._authorize = authorize or (lambda namespace, worker, token: None)
        self._limits = boundedjson.JsonLimits(max_bytes=max_body)
        self._host = host
        self._port = port
        self.metrics = metrics if metrics is not None else LCMetrics()
        self._max_body = max_body
        self._received: dict[str, Any] = {}  # owner kind -> its reports_received counter
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`), else the configured one."""
        return self._server.server_address[1] if self._server is not None else self._port

    @property
    def url(self) -> str:
        """The base URL workers get in ``LC_SERVER``."""
        return f"http://{self._host}:{self.port}"

    def start(self) -> None:
        """Bind and serve in a background thread. Raises OSError if the port is taken."""
        if self._server is not None:
            return
        server = ThreadingHTTPServer((self._host, self._port), _make_handler(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            # How often the loop looks for shutdown(); it bounds how long close() takes.
            kwargs={"poll_interval": 0.05},
            name=f"lc-report-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        log.info("report server listening", extra={"url": self.url})

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> ReportServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Called by the handler -------------------------------------------------------------------

    def _reject(self, reason: str) -> None:
        self.metrics.reports_rejected.labels(reason=reason).inc()

    def _accept(self, report: WorkerReport) -> None:
        self._on_report(report)
        kind = report.owner_kind.lower()
        counter = self._received.get(kind)
        if counter is None:  # the labelled child, looked up once per kind
            counter = self._received[kind] = self.metrics.reports_received.labels(owner_kind=kind)
        counter.inc()


_MAX_HEADERS = 100  # as http.client
_MAX_LINE = 65536
_SERVER = "sedna-lc"
_ACCEPTED = json.dumps({"accepted": True}).encode()
_date: tuple[int, str] = (0, "")  # the Date header of the current second


def _http_date() -> str:
    """The ``Date`` header's value, formatted once a second."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, email.utils.formatdate(now, usegmt=True))
    return _date[1]


class _Headers(dict[str, str]):
    """Request headers by lower-case name (the first of repeated ones), read like a Message."""

    def add(self, name: str, value: str) -> None:
        """Keep ``value`` unless a header of that name came first."""
        self.setdefault(name.lower(), value)

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        """The header's value, or ``default``."""
        return super().get(name.lower(), default)


def _make_handler(server: ReportServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        server_version = _SERVER
        protocol_version = "HTTP/1.1"
        # Responses go out in one write; errors of the standard library's parser in several,
        # and without TCP_NODELAY a keep-alive client would wait for the delayed ACK on them.
        disable_nagle_algorithm = True

        def parse_request(self) -> bool:
            """The common request (``<METHOD> <path> HTTP/1.1``, plain headers) parsed in a few
            string operations; anything else by the standard library's parser, whose header
            parsing (the ``email`` package) costs more than the rest of a report."""
            line = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
            words = line.split(" ")
            if len(words) != 3 or words[2] != "HTTP/1.1" or not words[1].startswith("/"):
                return super().parse_request()
            headers = _Headers()
            for _ in range(_MAX_HEADERS):
                raw = self.rfile.readline(_MAX_LINE + 1)
                if len(raw) > _MAX_LINE:
                    self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long")
                    return False
                if raw in (b"\r\n", b"\n", b""):
                    break
                name, colon, value = str(raw, "iso-8859-1").partition(":")
                if not colon or name != name.strip() or not name:
                    self.send_error(HTTPStatus.BAD_REQUEST, f"Bad header line {raw[:80]!r}")
                    return False
                headers.add(name, value.strip())
            else:
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers")
                return False
            self.command, self.path, self.request_version = words
            self.requestline = line
            self.headers = headers  # type: ignore[assignment]
            self.close_connection = headers.get("Connection", "").lower() == "close"
            if headers.get("Expect", "").lower() == "100-continue":
                return self.handle_expect_100()
            return True

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("report server: " + format, *args)

        def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            """The whole response in one write (status line, headers, body)."""
            self.log_request(status.value, len(body))
            closing = "Connection: close\r\n" if self.close_connection else ""
            head = (
                f"{self.protocol_version} {status.value} {status.phrase}\r\n"
                f"Server: {_SERVER}\r\nDate: {_http_date()}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n{closing}\r\n"
            )
            self.wfile.write(head.encode("latin-1") + body)

        def _json(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
            self._send(status, json.dumps(payload).encode(), "application/json")

        def _error(
            self, status: HTTPStatus, reason: str, message: str, field: str | None = None
        ) -> None:
            server._reject(reason)
            payload: dict[str, Any] = {"error": reason, "message": message}
            if field is not None:
                payload["field"] = field
            self._json(status, payload)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._send(HTTPStatus.OK, b"ok", "text/plain; charset=utf-8")
            elif path == "/metrics":
                self._send(HTTPStatus.OK, server.metrics.render(), server.metrics.content_type)
            elif _INFO_PATH.match(path):
                self._json(
                    HTTPStatus.METHOD_NOT_ALLOWED,
                    {"error": "method_not_allowed", "message": "use POST to report"},
                )
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": "not_found", "message": path})

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            match = _INFO_PATH.match(path)
            if match is None:
                self.close_connection = True
                self._json(HTTPStatus.NOT_FOUND, {"error": "not_found", "message": path})
                return
            worker = match.group("worker")
            body = self._read_body()
            if body is None:
                return
            try:
                data = boundedjson.loads(body, server._limits)
            except boundedjson.BodyError as exc:
                unreadable = exc.reason in ("not_json", "not_utf8")
                message = f"body is not JSON: {exc}" if unreadable else str(exc)
                self._error(HTTPStatus.BAD_REQUEST, "invalid_json", message)
                return
            try:
                report = parse_report(data, worker)
            except InvalidReport as exc:
                self._error(HTTPStatus.BAD_REQUEST, "invalid_report", str(exc), exc.field)
                return
            refusal = server._authorize(report.namespace, worker, self.headers.get(TOKEN_HEADER))
            if refusal is not None:
                log.warning(
                    "refused a report",
                    extra={"worker": worker, "namespace": report.namespace, "reason": refusal},
                )
                self._error(
                    HTTPStatus.FORBIDDEN,
                    refusal,
                    f"worker {report.namespace}/{worker} may not report here: {refusal}",
                )
                return
            try:
                server._accept(report)
            except InvalidReport as exc:  # valid alone, but nothing the LC can carry
                self._error(HTTPStatus.BAD_REQUEST, "invalid_report", str(exc), exc.field)
                return
            except Exception:
                log.exception("upstream refused a worker report", extra={"worker": worker})
                self._error(
                    HTTPStatus.SERVICE_UNAVAILABLE,
                    "upstream_unavailable",
                    "the LC cannot forward reports right now; retry later",
                )
                return
            self._send(HTTPStatus.OK, _ACCEPTED, "application/json")

        def _read_body(self) -> bytes | None:
            length_header = self.headers.get("Content-Length")
            if length_header is None:
                self.close_connection = True
                self._error(
                    HTTPStatus.LENGTH_REQUIRED, "length_required", "Content-Length is required"
                )
                return None
            try:
                length = int(length_header)
                if length < 0:
                    raise ValueError(length_header)
            except ValueError:
                self.close_connection = True
                self._error(
                    HTTPStatus.BAD_REQUEST,
                    "invalid_length",
                    f"Content-Length: {length_header!r} is not a size",
                )
                return None
            if length > server._max_body:
                # The body is not read; closing the connection discards it.
                self.close_connection = True
                self._error(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    "too_large",
                    f"body of {length} bytes exceeds the limit of {server._max_body}",
                )
                return None
            return self.rfile.read(length)

    return _Handler
