"""The GM's operations endpoint: ``/metrics`` (Prometheus) and ``/healthz``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from gm.metrics import TextRenderer


class OpsServer:
    """Serves metrics and health on ``host:port`` in a background thread."""

    def __init__(
        self,
        registry: CollectorRegistry,
        healthy: Callable[[], tuple[bool, str]],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        outer = self
        render = TextRenderer()

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # headers and body are separate writes

            def do_GET(self) -> None:
                if self.path == "/metrics":
                    outer._reply(self, 200, CONTENT_TYPE_LATEST, render(registry))
                elif self.path == "/healthz":
                    ok, detail = healthy()
                    outer._reply(self, 200 if ok else 503, "text/plain", detail.encode())
                else:
                    outer._reply(self, 404, "text/plain", b"not found\n")

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, code: int, ctype: str, body: bytes) -> None:
        handler.send_response(code)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    @property
    def port(self) -> int:
        """The port actually bound."""
        return self._server.server_address[1]

    def start(self) -> None:
        """Start serving."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
