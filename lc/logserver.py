"""The LC's log endpoint: the node's worker logs for the control plane, as a kubelet serves them.

``GET /containerLogs/<namespace>/<pod>/<container>?follow=&tailLines=&previous=&timestamps=``
(the kubelet's path and parameters; without ``<container>``, the worker's only one) answers the
worker's output as ``text/plain`` until the connection closes (no length, no chunks, so a proxy
copies bytes); ``follow`` streams it until the run ends or the client goes. The API server proxies
``.../pods/<name>/log`` here (``apiserver.podlogs``); the LC announces this port in its presence
message and the GM writes it into the Node's ``status.daemonEndpoints.kubeletEndpoint.Port``.

Only a caller with the node's log token (``Authorization: Bearer``) is served: the API server
derives it for the node (:func:`apis.node_log_token`). Without a configured token nothing is.
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
import re
import select
import socket
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote

from lc import podlogs

log = logging.getLogger(__name__)

DEFAULT_PORT = 10350
_PATH = re.compile(
    r"^/containerLogs/(?P<namespace>[^/]+)/(?P<pod>[^/]+)(?:/(?P<container>[^/]+))?/?$"
)


class LogSource(Protocol):
    """Where the worker logs of a node are (``lc.runtime.ProcessRuntime``)."""

    def log_path(self, name: str, namespace: str = ..., *, previous: bool = ...) -> Path | None:
        """The file of the worker's current (or previous) run, or None."""

    def log_running(self, name: str, namespace: str, path: Path) -> bool:
        """Whether the run writing ``path`` may still write to it."""


class LogRequest:
    """The parameters of one log request, validated (errors name the parameter)."""

    def __init__(self, query: dict[str, list[str]]) -> None:
        def flag(name: str) -> bool:
            value = (query.get(name) or ["false"])[-1].lower()
            if value not in ("true", "false", "1", "0", ""):
                raise ValueError(f"{name}: must be true or false, not {value!r}")
            return value in ("true", "1", "")

        self.follow = flag("follow")
        self.previous = flag("previous")
        self.timestamps = flag("timestamps")
        tail = (query.get("tailLines") or [None])[-1]
        if tail is not None and not tail.isdigit():
            raise ValueError(f"tailLines: must be a number of lines, not {tail!r}")
        self.tail = int(tail) if tail is not None else None


class LogServer:
    """Serves the logs of a node's workers on ``host:port`` (0: any free port)."""

    def __init__(
        self,
        source: LogSource,
        *,
        node: str,
        token: str | None,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        poll_interval: float = 0.2,
    ) -> None:
        self._source = source
        self.node = node
        self._token = token
        self._host = host
        self._port = port
        self._poll = poll_interval
        self._server: ThreadingHTTPServer | None = None
        self._closing = threading.Event()

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`), else the configured one."""
        return self._server.server_address[1] if self._server is not None else self._port

    def start(self) -> None:
        """Bind and serve in a background thread. Raises OSError if the port is taken."""
        if self._server is None:
            self._closing.clear()
            self._server = ThreadingHTTPServer((self._host, self._port), _make_handler(self))
            self._server.daemon_threads = True
            loop = functools.partial(self._server.serve_forever, poll_interval=0.05)
            threading.Thread(target=loop, name=f"lc-logs-{self.node}", daemon=True).start()
            log.info("log server listening", extra={"node": self.node, "port": self.port})

    def close(self) -> None:
        """Stop serving (ending follows) and release the port."""
        server, self._server = self._server, None
        if server is not None:
            self._closing.set()
            server.shutdown()  # returns once the serving loop has ended
            server.server_close()

    def authorized(self, header: str | None) -> str | None:
        """Why a request may not be served (None: it may)."""
        if self._token is None:
            return "this node serves no logs: its LC has no log token (--log-token)"
        scheme, _, credential = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            credential.strip().encode(), self._token.encode()
        ):
            return "a valid bearer token for this node's logs is required"
        return None


def _client_gone(connection: socket.socket) -> Callable[[], bool]:
    def gone() -> bool:
        try:
            readable, _, _ = select.select([connection], [], [], 0)
            return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    return gone


def _make_handler(server: LogServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        server_version = "sedna-lc-logs"
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("log server: " + format, *args)

        def _error(self, status: HTTPStatus, reason: str, message: str) -> None:
            body = json.dumps({"error": reason, "message": message}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path, _, query = self.path.partition("?")
            if path == "/healthz":
                body = b"ok"
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            refusal = server.authorized(self.headers.get("Authorization"))
            if refusal is not None:
                self._error(HTTPStatus.UNAUTHORIZED, "unauthorized", refusal)
                return
            match = _PATH.match(path)
            if match is None:
                self._error(HTTPStatus.NOT_FOUND, "not_found", f"no such path: {path}")
                return
            namespace, pod = unquote(match["namespace"]), unquote(match["pod"])
            container = unquote(match["container"]) if match["container"] else None
            try:
                request = LogRequest(parse_qs(query, keep_blank_values=True))
            except ValueError as exc:
                self._error(HTTPStatus.BAD_REQUEST, "bad_request", str(exc))
                return
            self._serve(namespace, pod, container, request)

        def _serve(
            self, namespace: str, pod: str, container: str | None, request: LogRequest
        ) -> None:
            source = server._source
            file = source.log_path(pod, namespace, previous=request.previous)
            where = f"worker {namespace}/{pod} on node {server.node}"
            if file is None:
                what = "no previous run" if request.previous else "no log"
                self._error(HTTPStatus.NOT_FOUND, "not_found", f"{where} has {what}")
                return
            labels = podlogs.parse_path(file)
            if labels is not None and container is not None and labels["container"] != container:
                message = f"{where} has no container {container!r} (it has {labels['container']!r})"
                self._error(HTTPStatus.NOT_FOUND, "not_found", message)
                return

            def running() -> bool:
                return not server._closing.is_set() and source.log_running(pod, namespace, file)

            entries = podlogs.stream(
                file,
                tail=request.tail,
                running=running if request.follow else None,
                stopped=_client_gone(self.connection),
                interval=server._poll,
            )
            self.close_connection = True  # the end of the body is the end of the connection
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                batch: list[str] = []
                for entry in entries:
                    batch.append(entry.render(request.timestamps))
                    if len(batch) >= 256 or request.follow:
                        self.wfile.write("".join(batch).encode())
                        self.wfile.flush()
                        batch.clear()
                if batch:
                    self.wfile.write("".join(batch).encode())
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass

    return _Handler
