"""A stand-in process runtime: workers "run" without processes and report at a set rate.

For simulating many nodes on one machine (``benchmarks/scale.py``, ``tests/test_scale_sim.py``).
`StandInRuntime` has the interface of `lc.runtime.ProcessRuntime` (``start``, ``close``,
``ensure``, ``remove``, ``remove_all``, ``status``, ``statuses``, ``poll``, the log lookups):
``ensure`` makes a worker Running at once and hands its status to ``on_status`` as the process
runtime does, so phase changes go up through the LC's outbox like real ones. Every
``report_interval`` seconds each running worker whose role is in ``report_roles`` sends a
worker report (``taskInfo.inferenceNumber`` counting 1, 2, 3, ... per worker) to ``on_report``:
given the LC's ``_on_report``, the same call its report server makes for an accepted POST.
`install` puts one into a LocalController that has not started yet.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from apis import WorkerPod, WorkerReport
from lc import workerspec
from lc.runtime import StatusCallback, WorkerPhase, WorkerStatus
from lc.workerspec import parse_worker_spec

if TYPE_CHECKING:
    from lc.agent import LocalController

__all__ = ["ROLE_LABEL", "ReportCallback", "StandInOptions", "StandInRuntime", "install"]

log = logging.getLogger(__name__)

#: The pod label naming a worker's role in its job (set by the GM's planner).
ROLE_LABEL = "sedna.io/worker-role"

#: Called with each report a stand-in worker sends.
ReportCallback = Callable[[WorkerReport], None]


class StandInOptions(BaseModel):
    """How stand-in workers behave."""

    model_config = ConfigDict(frozen=True)

    report_interval: float | None = Field(
        default=None, gt=0, description="seconds between two reports of a worker (None: none)"
    )
    report_roles: frozenset[str] | None = Field(
        default=None, description="roles (sedna.io/worker-role) that report; None: every worker"
    )
    report_kind: str = "inference"


class _Worker:
    """One stand-in worker: its spec, phase and report counter."""

    __slots__ = ("digest", "next_report", "reports", "restarts", "spec", "started_at")

    def __init__(self, spec: WorkerPod, digest: str, now: float, restarts: int = 0) -> None:
        self.spec = spec
        self.digest = digest
        self.started_at = now
        self.restarts = restarts
        self.reports = 0
        self.next_report: float | None = None


class StandInRuntime:
    """Workers that run without processes; the interface of `lc.runtime.ProcessRuntime`."""

    def __init__(
        self,
        *,
        node: str,
        data_dir: Path | str,
        on_status: StatusCallback | None = None,
        on_report: ReportCallback | None = None,
        options: StandInOptions | None = None,
    ) -> None:
        self._node = node
        self._data_dir = Path(data_dir)
        self._on_status = on_status
        self._on_report = on_report
        self._options = options or StandInOptions()
        self._lock = threading.Lock()
        self._emit_lock = threading.Lock()  # statuses reach the callback in transition order
        self._workers: dict[str, _Worker] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # ----- lifecycle -------------------------------------------------------------------------

    def start(self, *, own_thread: bool = True) -> None:
        """Start the reporting thread (nothing to adopt: stand-in workers live in memory).

        Without ``own_thread`` the caller calls `poll` (one thread can drive many runtimes)."""
        if self._thread is None and own_thread:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"lc-standin-{self._node}", daemon=True
            )
            self._thread.start()

    def close(self) -> None:
        """Stop reporting."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def set_options(self, options: StandInOptions) -> None:
        """Change the report rate or roles; takes effect at once (the first report after one
        interval)."""
        now = time.monotonic()
        with self._lock:
            self._options = options
            for worker in self._workers.values():
                worker.next_report = self._first_report(worker, now)
        self._wake.set()

    # ----- desired state ---------------------------------------------------------------------

    def ensure(
        self, spec: WorkerPod | Mapping[str, Any], env: Mapping[str, str] | None = None
    ) -> WorkerStatus:
        """Make the worker exist as specified: Running at once; a changed spec restarts it.

        Raises :class:`lc.errors.InvalidWorkerSpec` naming the bad field, as the process runtime.
        """
        worker_spec = parse_worker_spec(spec)
        extra = {str(k): str(v) for k, v in (env or {}).items()}
        digest = workerspec.spec_hash(worker_spec, extra)
        now = time.monotonic()
        with self._emit_lock:
            with self._lock:
                current = self._workers.get(worker_spec.key)
                if current is not None and current.digest == digest:
                    return self._status(current)
                restarts = current.restarts + 1 if current is not None else 0
                worker = _Worker(worker_spec, digest, time.time(), restarts)
                worker.next_report = self._first_report(worker, now)
                self._workers[worker_spec.key] = worker
                status = self._status(worker)
            self._emit(status)
        self._wake.set()
        return status

    def remove(self, name: str, namespace: str = "default") -> bool:
        """Forget the worker; False if there was none."""
        with self._lock:
            return self._workers.pop(f"{namespace}/{name}", None) is not None

    def remove_all(self) -> None:
        """Forget every worker."""
        with self._lock:
            self._workers.clear()

    # ----- queries ---------------------------------------------------------------------------

    def status(self, name: str, namespace: str = "default") -> WorkerStatus | None:
        """The current status of one worker, or None."""
        with self._lock:
            worker = self._workers.get(f"{namespace}/{name}")
            return self._status(worker) if worker is not None else None

    def statuses(self) -> list[WorkerStatus]:
        """The current status of every worker."""
        with self._lock:
            return [self._status(w) for w in self._workers.values()]

    def reports_sent(self) -> dict[str, int]:
        """``namespace/name`` -> how many reports the worker has sent."""
        with self._lock:
            return {key: w.reports for key, w in self._workers.items()}

    def log_path(
        self, name: str, namespace: str = "default", *, previous: bool = False
    ) -> Path | None:
        """Stand-in workers write no log: always None."""
        return None

    def log_running(self, name: str, namespace: str, path: Path) -> bool:
        """No run writes a log: always False."""
        return False

    @property
    def log_root(self) -> Path:
        """Where logs would be (nothing is written there)."""
        return self._data_dir / "var" / "log"

    # ----- reporting -------------------------------------------------------------------------

    def poll(self) -> int:
        """Send every report that is due; returns how many were sent."""
        if self._on_report is None:
            return 0
        now = time.monotonic()
        interval = self._options.report_interval
        due: list[tuple[_Worker, int]] = []
        with self._lock:
            for worker in self._workers.values():
                if interval is None or worker.next_report is None or worker.next_report > now:
                    continue
                worker.reports += 1
                # Keep the rate: the next report is one interval after this one was due.
                worker.next_report = max(worker.next_report + interval, now - interval)
                due.append((worker, worker.reports))
        for worker, number in due:
            try:
                self._on_report(self._report(worker.spec, number))
            except Exception:
                log.exception(
                    "stand-in report failed", extra={"node": self._node, "worker": worker.spec.key}
                )
        return len(due)

    def _first_report(self, worker: _Worker, now: float) -> float | None:
        options = self._options
        if options.report_interval is None:
            return None
        if options.report_roles is not None:
            role = (worker.spec.template.metadata.labels or {}).get(ROLE_LABEL)
            if role not in options.report_roles:
                return None
        return now + options.report_interval

    def _report(self, spec: WorkerPod, number: int) -> WorkerReport:
        owner = spec.owner
        return WorkerReport.model_validate(
            {
                "name": spec.name,
                "namespace": spec.namespace,
                "ownerName": owner.name if owner is not None else spec.name,
                "ownerKind": owner.kind if owner is not None else "Pod",
                "kind": self._options.report_kind,
                "status": "running",
                "taskInfo": {"inferenceNumber": number, "hardExampleNumber": number // 10},
            }
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:
                log.exception("stand-in runtime poll failed", extra={"node": self._node})
            self._wake.wait(self._sleep())
            self._wake.clear()

    def _sleep(self) -> float:
        with self._lock:
            due = [w.next_report for w in self._workers.values() if w.next_report is not None]
        if not due:
            return 5.0  # set_options and ensure wake the thread
        return min(max(min(due) - time.monotonic(), 0.0), 1.0)

    # ----- internals -------------------------------------------------------------------------

    def _status(self, worker: _Worker) -> WorkerStatus:
        return WorkerStatus(
            name=worker.spec.name,
            namespace=worker.spec.namespace,
            phase=WorkerPhase.RUNNING,
            restarts=worker.restarts,
            owner=worker.spec.owner,
            started_at=datetime.fromtimestamp(worker.started_at, UTC),
        )

    def _emit(self, status: WorkerStatus) -> None:
        if self._on_status is None:
            return
        try:
            self._on_status(status)
        except Exception:
            log.exception(
                "status callback failed", extra={"worker": f"{status.namespace}/{status.name}"}
            )


def install(
    lc: LocalController,
    options: StandInOptions | None = None,
    *,
    sent: ReportCallback | None = None,
) -> StandInRuntime:
    """Replace the process runtime of an LC that has not started with a stand-in whose workers
    report through the LC's own upstream path (``_on_report``, as its report server does);
    ``sent`` is called with each report the LC took."""

    def report(body: WorkerReport) -> None:
        lc._on_report(body)
        if sent is not None:
            sent(body)

    runtime = StandInRuntime(
        node=lc.node,
        data_dir=lc.settings.data_dir,
        on_status=lc._on_worker_status,
        on_report=report,
        options=options,
    )
    lc.runtime = runtime  # type: ignore[assignment]
    return runtime
