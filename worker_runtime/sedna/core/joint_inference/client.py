"""The edge's HTTP client of the cloud model service (one keep-alive connection)."""

from __future__ import annotations

import http.client
import threading
import time
from typing import Any

from pydantic import ValidationError

from sedna.common.errors import CloudUnavailableError, InvalidInputError
from sedna.core.joint_inference.protocol import ErrorResponse, PredictResponse, dumps

_PREDICT_PATH = "/predict"


class CloudClient:
    """Calls ``POST /predict`` on ``host:port``; raises :class:`CloudUnavailableError` when the
    cloud is down, slower than ``timeout`` seconds, or answers with an error."""

    def __init__(self, host: str, port: int, *, timeout: float = 5.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._connection: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        """``host:port`` of the cloud service."""
        return f"{self.host}:{self.port}"

    def predict(self, data: Any, *, batch: bool = False) -> Any:
        """The cloud's prediction for one sample, or the list of predictions for a batch."""
        try:
            body = dumps({"data": data, "batch": batch})
        except (TypeError, ValueError) as error:
            raise InvalidInputError(f"cannot send this sample to the cloud: {error}") from None
        with self._lock:
            status, payload = self._exchange(body)
        if status != 200:
            try:
                message = ErrorResponse.model_validate_json(payload).error
            except ValidationError:
                message = payload[:200].decode(errors="replace")
            raise CloudUnavailableError(f"cloud {self.address} answered {status}: {message}")
        try:
            result = PredictResponse.model_validate_json(payload).result
        except ValidationError as error:
            raise CloudUnavailableError(
                f"cloud {self.address} sent a bad answer: {error}"
            ) from None
        if batch and (not isinstance(result, list) or len(result) != len(data)):
            raise CloudUnavailableError(
                f"cloud {self.address} answered a batch of {len(data)} with "
                f"{len(result) if isinstance(result, list) else type(result).__name__}"
            )
        return result

    def ready(self) -> bool:
        """Whether the cloud service answers ``GET /healthz`` with 200 now."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            connection.request("GET", "/healthz")
            return connection.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    def wait_ready(self, timeout: float, interval: float = 0.2) -> bool:
        """Poll :meth:`ready` for up to ``timeout`` seconds; whether the cloud became ready."""
        deadline = time.monotonic() + timeout
        while True:
            if self.ready():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)

    def close(self) -> None:
        """Close the connection (a later call opens a new one)."""
        with self._lock:
            self._drop()

    def _exchange(self, body: bytes) -> tuple[int, bytes]:
        # A kept-alive connection may have been closed by the server meanwhile: one retry on a
        # fresh connection tells that apart from a cloud that is really down.
        reused = self._connection is not None
        try:
            return self._send(body)
        except (ConnectionError, http.client.HTTPException) as error:
            self._drop()
            if not reused:
                raise CloudUnavailableError(f"cloud {self.address} unreachable: {error}") from None
        except OSError as error:  # timeouts and network errors
            self._drop()
            raise CloudUnavailableError(f"cloud {self.address} unreachable: {error}") from None
        try:
            return self._send(body)
        except (OSError, http.client.HTTPException) as error:
            self._drop()
            raise CloudUnavailableError(f"cloud {self.address} unreachable: {error}") from None

    def _send(self, body: bytes) -> tuple[int, bytes]:
        if self._connection is None:
            self._connection = http.client.HTTPConnection(
                self.host, self.port, timeout=self.timeout
            )
        connection = self._connection
        connection.request(
            "POST", _PREDICT_PATH, body=body, headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        payload = response.read()
        if response.will_close:
            self._drop()
        return response.status, payload

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
