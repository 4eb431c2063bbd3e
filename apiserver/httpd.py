"""HTTP/1.1 over TLS with the standard library: one thread per connection, keep-alive, chunked
streams for watches."""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from apiserver.app import BODY_LIMITS, ApiApp, Request, Response, error_response
from apiserver.errors import ApiError
from broker.boundedjson import BodyError

log = logging.getLogger(__name__)

# An idle keep-alive connection is closed after this long.
IDLE_TIMEOUT_SECONDS = 120.0
_REASONS = {400: "BadRequest", 413: "RequestEntityTooLarge"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sedna-apiserver"
    sys_version = ""
    # Buffered writes: headers and body leave together (see `_send`, which flushes).
    wbufsize = 64 * 1024
    server: ApiHttpServer

    def setup(self) -> None:
        super().setup()
        self.request.settimeout(IDLE_TIMEOUT_SECONDS)

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (ssl.SSLError, ConnectionError, TimeoutError) as exc:
            log.debug("connection closed: %s", exc)
            self.close_connection = True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Requests are logged by `_serve`, with their duration."""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def _read_body(self) -> bytes:
        """The request body; raises `BodyError` (a 4xx) when it is too large or malformed."""
        limit = BODY_LIMITS.max_bytes
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            total = 0
            while True:
                size_text = self.rfile.readline(64).split(b";")[0].strip()
                try:
                    size = int(size_text or b"0", 16)
                except ValueError:
                    raise BodyError(f"invalid chunk size {size_text!r}", "bad_framing") from None
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > limit:
                    raise BodyError(f"request body exceeds the limit of {limit} bytes", "too_large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(64)
            return b"".join(chunks)
        length_text = self.headers.get("Content-Length") or "0"
        if not length_text.strip().isdigit():
            raise BodyError(f"invalid Content-Length {length_text!r}", "bad_framing")
        length = int(length_text)
        if length > limit:
            raise BodyError(
                f"request body of {length} bytes exceeds the limit of {limit}", "too_large"
            )
        return self.rfile.read(length) if length else b""

    def _client_gone(self) -> bool:
        """Whether the peer closed the connection (a watch client never sends more data)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def _serve(self) -> None:
        started = time.monotonic()
        url = urlsplit(self.path)
        try:
            body = self._read_body()
        except BodyError as exc:
            # The rest of the body is not read: the connection cannot be reused.
            self.close_connection = True
            code = 413 if exc.reason == "too_large" else 400
            self._send(error_response(ApiError(code, _REASONS[code], str(exc))))
            return
        request = Request(
            method=self.command,
            path=url.path,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            headers={key: value for key, value in self.headers.items()},
            body=body,
            client_gone=self._client_gone,
        )
        response = self.server.app.handle(request)
        if response.stream is not None:
            self._send_stream(response)
        else:
            self._send(response)
        log.debug(
            "%s %s -> %d in %.1f ms",
            self.command,
            url.path,
            response.status,
            (time.monotonic() - started) * 1000,
        )

    def _send_headers(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header(
            "Cache-Control", response.headers.pop("Cache-Control", "no-cache, private")
        )
        for name, value in response.headers.items():
            self.send_header(name, value)

    def _send(self, response: Response) -> None:
        self._send_headers(response)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)
        self.wfile.flush()

    def _send_stream(self, response: Response) -> None:
        assert response.stream is not None
        self._send_headers(response)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            self.wfile.flush()
            for chunk in response.stream:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (OSError, ssl.SSLError) as exc:
            log.debug("watch client went away: %s", exc)
            self.close_connection = True
        finally:
            close = getattr(response.stream, "close", None)
            if close is not None:
                close()


class ApiHttpServer(ThreadingHTTPServer):
    """A threading HTTP server that wraps connections in TLS in the connection's own thread."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: ApiApp, tls: ssl.SSLContext | None) -> None:
        self.app = app
        self.tls = tls
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.address_family = family
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        # Responses are small and latency-bound: do not let Nagle hold them back.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            # The handshake happens on first read, in the connection's thread, so a slow
            # client cannot stall the accept loop.
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self._connections_lock:
            self._connections.add(sock)
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("error on connection from %s", client_address, exc_info=True)

    def close_connections(self) -> None:
        """Shut down every open connection (idle keep-alives and watches)."""
        with self._connections_lock:
            connections = list(self._connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server TLS context (TLS 1.2+, HTTP/1.1 via ALPN)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    context.set_alpn_protocols(["http/1.1"])
    return context
