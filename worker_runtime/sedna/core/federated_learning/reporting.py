"""Status reports of federated workers to their LocalController, sent off the round path."""

from __future__ import annotations

import logging
import threading
from typing import Any

from sedna.common.report import LCReporter, ReportedModel, WorkerReport, WorkerStatus, utc_now

LOG = logging.getLogger("sedna.federated_learning.reporting")

OWNER_KIND = "federatedlearningjob"


class RoundReporter:
    """Sends the latest report from a background thread, so a slow LC never delays a round.

    Reports are state: only the newest pending one is sent.
    """

    def __init__(self, kind: str, reporter: LCReporter | None = None) -> None:
        self.kind = kind
        self.reporter = reporter if reporter is not None else LCReporter.from_env()
        self._pending: WorkerReport | None = None
        self._wake = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.start_time = utc_now()

    def report(
        self,
        status: WorkerStatus,
        task_info: dict[str, Any],
        models: list[ReportedModel] | None = None,
    ) -> None:
        """Queue a report (replacing an unsent one)."""
        if not self.reporter.enabled:
            return
        body = self.reporter.build(
            owner_kind=OWNER_KIND,
            kind=self.kind,
            status=status,
            task_info={"startTime": self.start_time, "updateTime": utc_now(), **task_info},
            models=models,
        )
        with self._wake:
            self._pending = body
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sedna-fl-report", daemon=True
                )
                self._thread.start()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._pending is None and not self._closed:
                    self._wake.wait()
                body, self._pending = self._pending, None
                closed = self._closed
            if body is not None:
                try:
                    self.reporter.report(body)
                except Exception:  # reporting must never take the worker down
                    LOG.exception("sending the report to the LC failed")
            elif closed:
                return

    def close(self, timeout: float = 10.0) -> None:
        """Send what is pending and stop the thread."""
        with self._wake:
            self._closed = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._wake:
            self._thread = None
            self._closed = False
