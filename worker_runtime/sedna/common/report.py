"""Reports from a worker to the LocalController of its node.

A report is ``POST {LC_SERVER}/sedna/workers/<WORKER_NAME>/info`` with a JSON body such as::

    {"name": "worker-name", "namespace": "default",
     "ownerName": "jointinferenceservice-name", "ownerKind": "jointinferenceservice",
     "kind": "inference", "status": "running",
     "taskInfo": {"inferenceNumber": 1000, "hardExampleNumber": 100, "uploadCloudRatio": 0.1,
                  "startTime": "2020-11-03T08:39:22.517Z", "updateTime": "..."}}

Training workers may add ``models`` (``[{"format", "url", "metrics"}]``) and their own
``taskInfo`` fields (e.g. ``currentRound``). Reports are state, not events: a newer report
supersedes an older one, so when the LC cannot be reached the reporter keeps only the latest and
sends it on the next attempt. Reporting never raises into the worker.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr

from sedna.common.errors import ConfigError
from sedna.common.log import get_logger

LOG = get_logger("report")

# The LC is on this node: never route reports through an HTTP proxy from the environment.
WORKER_TOKEN_HEADER = "X-Sedna-Worker-Token"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

WorkerStatus = Literal["running", "completed", "failed"]

#: A model metric: a number, a list of numbers or a string (the LC carries nothing else).
#: The control plane's copy is ``apis.messages.MetricValue``; tests/test_contracts.py keeps the
#: two in step.
MetricValue = StrictInt | StrictFloat | StrictStr | list[StrictInt | StrictFloat]


def utc_now() -> str:
    """The current time as RFC 3339 UTC with milliseconds (``2020-11-03T08:39:22.517Z``)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _ReportModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")


class ReportedModel(_ReportModel):
    """A model a worker produced: its format, where it is, and its metrics."""

    format: str
    url: str
    metrics: dict[str, MetricValue] | None = None
    # Lifelong learning (upstream's names): what the knowledge base learnt, for the job status.
    classes: list[str] | None = None
    current_metric: dict[str, dict[str, float]] | None = None
    number_of_labeled_unseen_sample: int | None = Field(default=None, ge=0)
    task_samples: dict[str, int] | None = None  # training samples of each task's model


class TaskInfo(_ReportModel):
    """Progress of the worker's task; known fields are typed, others pass through."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    inference_number: int | None = Field(default=None, alias="inferenceNumber", ge=0)
    hard_example_number: int | None = Field(default=None, alias="hardExampleNumber", ge=0)
    upload_cloud_ratio: float | None = Field(default=None, alias="uploadCloudRatio", ge=0, le=1)
    cloud_failures: int | None = Field(default=None, alias="cloudFailures", ge=0)
    current_round: int | None = Field(default=None, alias="currentRound", ge=0)
    start_time: str | None = Field(default=None, alias="startTime")
    update_time: str | None = Field(default=None, alias="updateTime")


class WorkerReport(_ReportModel):
    """The body of ``POST /sedna/workers/<name>/info``."""

    name: str = Field(min_length=1)
    namespace: str = "default"
    owner_name: str = Field(alias="ownerName", min_length=1)
    owner_kind: str = Field(alias="ownerKind", min_length=1)
    kind: str = Field(min_length=1)
    status: WorkerStatus
    task_info: TaskInfo | None = Field(default=None, alias="taskInfo")
    models: list[ReportedModel] | None = None
    owner_info: dict[str, Any] | None = Field(default=None, alias="ownerInfo")

    def to_json(self) -> bytes:
        """The JSON body as sent (camelCase keys, unset fields left out)."""
        return self.model_dump_json(by_alias=True, exclude_none=True).encode()


class LCReporter:
    """Sends :class:`WorkerReport` s to the LC; bounded retries, never raises on failure.

    Built with :meth:`from_env` in workers. Without an LC address reporting is disabled (the
    worker runs stand-alone) and :meth:`report` returns ``False``.
    """

    def __init__(
        self,
        lc_server: str | None,
        worker_name: str,
        *,
        namespace: str = "default",
        owner_name: str | None = None,
        timeout: float = 2.0,
        attempts: int = 3,
        retry_delay: float = 0.2,
        token: str | None = None,
    ) -> None:
        if attempts < 1:
            raise ConfigError(f"reporter attempts must be at least 1, got {attempts}")
        if timeout <= 0:
            raise ConfigError(f"reporter timeout must be positive, got {timeout}")
        if not worker_name:
            raise ConfigError("reporter needs a worker name (WORKER_NAME)")
        self.worker_name = worker_name
        self.namespace = namespace
        self.owner_name = owner_name or worker_name
        self.url = _info_url(lc_server, worker_name) if lc_server else None
        self.timeout = timeout
        self.attempts = attempts
        self.retry_delay = retry_delay
        # The LC's proof that a report comes from the worker it names (SEDNA_WORKER_TOKEN).
        self._headers = {"Content-Type": "application/json"}
        if token:
            self._headers[WORKER_TOKEN_HEADER] = token
        self._pending: WorkerReport | None = None
        self._lock = threading.Lock()
        if self.url is None:
            LOG.info("LC_SERVER not set: reports to the LocalController are disabled")

    @classmethod
    def from_env(cls, **kwargs: Any) -> LCReporter:
        """A reporter for this worker from ``LC_SERVER``, ``WORKER_NAME``, ``NAMESPACE`` and
        ``JOB_NAME`` / ``SERVICE_NAME``; ``kwargs`` override timeouts and retries."""
        worker_name = os.environ.get("WORKER_NAME") or f"worker-{os.getpid()}"
        return cls(
            os.environ.get("LC_SERVER") or None,
            worker_name,
            namespace=os.environ.get("NAMESPACE") or "default",
            owner_name=os.environ.get("JOB_NAME") or os.environ.get("SERVICE_NAME"),
            token=os.environ.get("SEDNA_WORKER_TOKEN"),
            **kwargs,
        )

    @property
    def enabled(self) -> bool:
        """Whether an LC address is configured."""
        return self.url is not None

    @property
    def pending(self) -> WorkerReport | None:
        """The latest report not yet delivered, if any."""
        return self._pending

    def build(
        self,
        *,
        owner_kind: str,
        kind: str,
        status: WorkerStatus,
        task_info: TaskInfo | dict[str, Any] | None = None,
        models: list[ReportedModel] | list[dict[str, Any]] | None = None,
    ) -> WorkerReport:
        """A report about this worker (name, namespace and owner filled in)."""
        return WorkerReport.model_validate(
            {
                "name": self.worker_name,
                "namespace": self.namespace,
                "ownerName": self.owner_name,
                "ownerKind": owner_kind,
                "kind": kind,
                "status": status,
                "taskInfo": task_info,
                "models": models,
            }
        )

    def report(self, report: WorkerReport) -> bool:
        """Send ``report`` (it replaces any undelivered one); ``True`` when the LC took it."""
        with self._lock:
            self._pending = report
            return self._send_pending()

    def flush(self) -> bool:
        """Retry the undelivered report, if any; ``True`` when nothing is left to send."""
        with self._lock:
            return self._send_pending()

    def _send_pending(self) -> bool:
        report = self._pending
        if report is None:
            return True
        if self.url is None:
            return False
        body = report.to_json()
        for attempt in range(1, self.attempts + 1):
            outcome = self._post(body)
            if outcome == "ok":
                self._pending = None
                return True
            if outcome == "rejected":
                # The LC refused this body; resending it cannot help.
                self._pending = None
                return False
            if attempt < self.attempts:
                time.sleep(self.retry_delay * attempt)
        LOG.warning(
            "LC unreachable; keeping the latest report for the next attempt",
            extra={"url": self.url, "attempts": self.attempts},
        )
        return False

    def _post(self, body: bytes) -> Literal["ok", "rejected", "retry"]:
        assert self.url is not None
        request = urllib.request.Request(self.url, data=body, method="POST", headers=self._headers)
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                response.read()
            return "ok"
        except urllib.error.HTTPError as error:
            detail = error.read(500).decode(errors="replace")
            if 400 <= error.code < 500:
                LOG.error(
                    "LC rejected the worker report",
                    extra={"url": self.url, "status": error.code, "detail": detail},
                )
                return "rejected"
            LOG.debug("LC error", extra={"url": self.url, "status": error.code})
            return "retry"
        except (OSError, ValueError) as error:
            LOG.debug("LC not reachable", extra={"url": self.url, "error": str(error)})
            return "retry"


def _info_url(lc_server: str, worker_name: str) -> str:
    base = lc_server.strip().rstrip("/")
    if "://" not in base:
        base = f"http://{base}"
    parsed = urllib.parse.urlsplit(base)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"LC_SERVER must be an http(s) URL, got {lc_server!r}")
    return f"{base}/sedna/workers/{urllib.parse.quote(worker_name, safe='')}/info"
