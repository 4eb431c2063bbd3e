"""Upstream Sedna's ``sedna.service.client``: LC reports and the cloud model client.

``LCClient.send`` posts a report dict to ``{LC_SERVER}/sedna/workers/<worker>/info``;
``LCReporter`` is upstream's periodic joint inference reporter (counts in ``ownerInfo``);
``ModelClient`` calls an ``InferenceServer``/``BigModelService``. ``AggregationClient`` (the
WebSocket weight exchange) and ``KBClient`` are not provided: federated learning exchanges
weights over gRPC (``sedna.core.federated_learning``).
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from sedna.common.log import get_logger
from sedna.common.report import WORKER_TOKEN_HEADER
from sedna.core.joint_inference.protocol import dumps

LOG = get_logger("service.client")

# Workers talk to their own node's LC and to job peers: never through an environment proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_request(
    url: str,
    method: str | None = None,
    timeout: float | None = None,
    binary: bool = True,
    no_decode: bool = False,
    attempts: int = 5,
    retry_delay: float = 3.0,
    **kwargs: Any,
) -> Any:
    """Send a request (``json=`` body) and return the decoded JSON answer (text when not
    ``binary``); ``None`` after ``attempts`` failures, as upstream (which retried 5 x 3 s)."""
    body = None
    headers = dict(kwargs.get("headers") or {})
    if "json" in kwargs:
        body = dumps(kwargs["json"])
        headers.setdefault("Content-Type", "application/json")
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(url, data=body, method=method or "GET", headers=headers)
        try:
            with _OPENER.open(request, timeout=timeout or 300) as response:
                payload = response.read()
                if no_decode:
                    return payload
                return json.loads(payload) if binary else payload.decode("utf-8")
        except urllib.error.HTTPError as error:
            LOG.warning("request answered %s", error.code, extra={"url": url})
            if 400 <= error.code < 500:
                return None
        except (OSError, ValueError) as error:
            LOG.warning("request failed", extra={"url": url, "error": str(error)})
        if attempt < attempts:
            time.sleep(retry_delay)
    return None


class LCClient:
    """Sends worker reports to the LocalController."""

    @classmethod
    def send(cls, lc_server: str | None, worker_name: str, message: dict[str, Any]) -> Any:
        """POST ``message`` to the LC; the LC's answer, ``None`` when it did not take it (or
        ``LC_SERVER`` is unset: reporting is off when the worker runs alone)."""
        if not lc_server:
            return None
        base = lc_server.rstrip("/")
        if "://" not in base:
            base = f"http://{base}"
        worker = urllib.parse.quote(worker_name, safe="")
        # The LC here takes reports only with the worker's own token.
        token = os.environ.get("SEDNA_WORKER_TOKEN")
        headers = {WORKER_TOKEN_HEADER: token} if token else {}
        return http_request(
            f"{base}/sedna/workers/{worker}/info",
            method="POST",
            json=message,
            timeout=10,
            headers=headers,
        )


class LCReporter(threading.Thread):
    """Upstream's joint inference reporter: every ``period_interval`` seconds with activity,
    sends ``message`` with ``ownerInfo`` = ``{startTime, updateTime, inferenceNumber,
    hardExampleNumber, uploadCloudRatio}``."""

    def __init__(self, lc_server: str | None, message: dict[str, Any], period_interval: float = 30):
        super().__init__(name="sedna-lc-reporter", daemon=True)
        self.inference_number = 0
        self.hard_example_number = 0
        self.period_interval = period_interval
        self.lc_server = lc_server
        self.period_increment = 0
        self.message = message
        self.lock = threading.Lock()

    def update_for_edge_inference(self) -> None:
        """Count one sample answered on the edge."""
        with self.lock:
            self.inference_number += 1
            self.period_increment += 1

    def update_for_collaboration_inference(self) -> None:
        """Count one hard sample sent to the cloud."""
        with self.lock:
            self.inference_number += 1
            self.hard_example_number += 1
            self.period_increment += 1

    def owner_info(self, start: str) -> dict[str, Any]:
        """The counts as upstream reports them."""
        with self.lock:
            total, hard = self.inference_number, self.hard_example_number
        return {
            "startTime": start,
            "updateTime": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime()),
            "inferenceNumber": total,
            "hardExampleNumber": hard,
            "uploadCloudRatio": hard / total if total else 0.0,
        }

    def run(self) -> None:
        """Report every period in which something was counted."""
        while True:
            start = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
            time.sleep(self.period_interval)
            if self.period_increment == 0:
                continue
            self.message["ownerInfo"] = self.owner_info(start)
            # Upstream's message has no status; the LC here needs one.
            self.message.setdefault("status", "running")
            LCClient.send(self.lc_server, self.message["name"], self.message)
            self.period_increment = 0


class ModelClient:
    """Client of a remote model service (``POST <endpoint>/predict``)."""

    def __init__(
        self,
        service_name: str,
        version: str = "",
        host: str = "127.0.0.1",
        port: str | int = "8080",
        protocol: str = "http",
    ) -> None:
        self.server_name = f"{service_name}{version}"
        self.endpoint = f"{protocol}://{host}:{port}/{service_name}"

    def check_server_status(self) -> Any:
        """The service's route list, ``None`` when it does not answer."""
        return http_request(url=self.endpoint, method="GET", attempts=1)

    def inference(self, x: Any, **kwargs: Any) -> Any:
        """``{"result": ...}`` of the remote model for ``x``; ``None`` when it failed."""
        return http_request(
            url=f"{self.endpoint}/predict", method="POST", json={**kwargs, "data": x}
        )


def __getattr__(name: str) -> Any:
    if name in ("AggregationClient", "KBClient"):
        reason = {
            "AggregationClient": "federated weights move over gRPC; FederatedLearning "
            "(sedna.core.federated_learning) connects to the aggregator itself",
            "KBClient": "the knowledge base client belongs to lifelong learning "
            "(sedna.core.lifelong_learning)",
        }[name]
        raise ImportError(f"sedna.service.client.{name} is not supported: {reason}", name=name)
    raise AttributeError(f"module 'sedna.service.client' has no attribute {name!r}")
