"""The cloud worker: serve the big model's predictions over HTTP (see ``protocol``)."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from pydantic import ValidationError

from sedna.common.config import BaseConfig
from sedna.common.errors import ConfigError
from sedna.common.estimator import resolve_estimator
from sedna.common.log import ensure_logging, get_logger
from sedna.core.joint_inference.protocol import (
    HEALTH_PATH,
    PREDICT_PATHS,
    PredictRequest,
    decode_data,
    dumps,
)

LOG = get_logger("joint_inference.cloud")

DEFAULT_PORT = 5000
# Large enough for a batch of images as JSON, small enough that one request cannot exhaust memory.
MAX_BODY_BYTES = 64 * 1024 * 1024
# Idle keep-alive connections are closed after this many seconds.
IDLE_TIMEOUT_SECONDS = 60.0


def parse_port(value: str | int | None, variable: str) -> int | None:
    """``value`` as a TCP port (``None`` stays ``None``); errors name ``variable``."""
    if value is None or value == "":
        return None
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{variable} must be a port number, got {value!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{variable} must be between 0 and 65535, got {port}")
    return port


class PredictService(Protocol):
    """What the HTTP server serves: predict paths, an info path and the predict handler."""

    predict_paths: tuple[str, ...]
    info_paths: tuple[str, ...]

    def handle(self, request: PredictRequest) -> tuple[int, dict[str, Any]]:
        """The HTTP status and answer document of one predict request."""
        ...


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: PredictService) -> None:
        self.service = service
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            # The edge gave up (its timeout) or went away: nothing to answer any more.
            LOG.debug("connection to the edge lost", extra={"error": str(error)})
        else:
            LOG.exception("error while serving a request", extra={"client": client_address})

    def close_connections(self) -> None:
        with self.connections_lock:
            connections, self.connections = self.connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_SECONDS
    # Headers and body go out in two writes; with Nagle's algorithm and the client's delayed
    # ACK each answer would wait ~40 ms.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        if self.path == HEALTH_PATH:
            self._answer(200, {"status": "ok"})
        elif self.path in self.server.service.info_paths:
            paths = self.server.service.predict_paths
            self._answer(200, {"infos": [{"path": path, "name": "predict"} for path in paths]})
        else:
            self._answer(404, {"error": f"no such endpoint: GET {self.path}"})

    def do_POST(self) -> None:
        if self.path not in self.server.service.predict_paths:
            self._discard_body()
            self._answer(404, {"error": f"no such endpoint: POST {self.path}"})
            return
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            self._answer(411, {"error": "Content-Length required"})
            return
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True
            self._answer(413, {"error": f"request larger than {MAX_BODY_BYTES} bytes"})
            return
        body = self.rfile.read(int(length))
        try:
            request = PredictRequest.model_validate_json(body)
        except ValidationError as error:
            self._answer(400, {"error": f"bad predict request: {error}"})
            return
        status, document = self.server.service.handle(request)
        self._answer(status, document)

    def _discard_body(self) -> None:
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) <= MAX_BODY_BYTES:
            self.rfile.read(int(length))
        else:
            self.close_connection = True

    def _answer(self, status: int, document: dict[str, Any]) -> None:
        try:
            payload = dumps(document)
        except (TypeError, ValueError) as error:
            status, payload = 500, dumps({"error": f"prediction is not JSON serialisable: {error}"})
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug(format % args, extra={"client": self.address_string()})


class BigModelService:
    """Serves ``estimator.predict`` on ``BIG_MODEL_BIND_PORT`` for the edge workers.

    The model is loaded from ``MODEL_URL`` (or ``model_url``) when one is set. Predictions are
    serialised (one estimator call at a time) unless ``concurrent`` is true.
    """

    def __init__(
        self,
        estimator: Any,
        *,
        host: str | None = None,
        port: int | None = None,
        model_url: str | None = None,
        concurrent: bool = False,
    ) -> None:
        ensure_logging()
        self.estimator = resolve_estimator(estimator)
        url = model_url if model_url is not None else BaseConfig.model_url
        if url:
            resolve_estimator(self.estimator, ("predict", "load")).load(url)
            LOG.info("big model loaded", extra={"model_url": url})
        self.host = host or os.environ.get("BIG_MODEL_BIND_IP") or "0.0.0.0"
        if port is None:
            port = parse_port(BaseConfig.big_model_bind_port, "BIG_MODEL_BIND_PORT")
        if port is None:
            port = parse_port(BaseConfig.big_model_port, "BIG_MODEL_PORT")
        self.requested_port = DEFAULT_PORT if port is None else parse_port(port, "port")
        # Upstream's edge posts to /<service name>/predict.
        resource = BaseConfig.resource_name()
        self.info_paths: tuple[str, ...] = (f"/{resource}",) if resource else ()
        self.predict_paths = PREDICT_PATHS + tuple(f"{path}/predict" for path in self.info_paths)
        self._predict_lock = None if concurrent else threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._counts_lock = threading.Lock()
        self.requests = 0
        self.samples = 0
        self.errors = 0

    @property
    def port(self) -> int:
        """The bound port (useful with port 0); the requested one before :meth:`start`."""
        if self._server is not None:
            return int(self._server.server_address[1])
        return int(self.requested_port or 0)

    def start(self, block: bool = True) -> BigModelService:
        """Bind and serve; blocks until interrupted unless ``block`` is false."""
        if self._server is not None:
            raise RuntimeError("BigModelService is already started")
        try:
            self._server = _Server((self.host, int(self.requested_port or 0)), self)
        except OSError as error:
            raise ConfigError(
                f"cannot serve on {self.host}:{self.requested_port}: {error.strerror or error}"
            ) from None
        LOG.info("big model service listening", extra={"host": self.host, "port": self.port})
        if not block:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="big-model-service",
                daemon=True,
            )
            self._thread.start()
            return self
        try:
            self._server.serve_forever(poll_interval=0.5)
        except KeyboardInterrupt:
            LOG.info("big model service interrupted")
        finally:
            self._close()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection (idempotent)."""
        if self._server is None:
            return
        self._server.shutdown()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._close()

    def _close(self) -> None:
        if self._server is None:
            return
        self._server.close_connections()
        self._server.server_close()
        self._server = None
        LOG.info("big model service stopped", extra={"requests": self.requests})

    def __enter__(self) -> BigModelService:
        return self.start(block=False) if self._server is None else self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def handle(self, request: PredictRequest) -> tuple[int, dict[str, Any]]:
        """Run one predict request; returns the HTTP status and the answer document."""
        data = decode_data(request.data)
        if request.batch and (isinstance(data, str) or not hasattr(data, "__len__")):
            return 400, {"error": "a batch request needs a list of samples in 'data'"}
        size = len(data) if request.batch else 1
        try:
            if self._predict_lock is None:
                result = self._predict(data, request)
            else:
                with self._predict_lock:
                    result = self._predict(data, request)
        except Exception as error:  # the user's estimator: report, keep serving
            LOG.exception("big model prediction failed")
            self._count(size, error=True)
            return 500, {"error": f"prediction failed: {type(error).__name__}: {error}"}
        if request.batch:
            try:
                result = list(result)
            except TypeError:
                result = None
            if result is None or len(result) != size:
                self._count(size, error=True)
                return 500, {"error": f"estimator returned no list of {size} predictions"}
        self._count(size)
        return 200, {"result": result}

    def _predict(self, data: Any, request: PredictRequest) -> Any:
        return self.estimator.predict(data)

    def _count(self, samples: int, *, error: bool = False) -> None:
        with self._counts_lock:
            self.requests += 1
            self.samples += samples
            self.errors += int(error)
