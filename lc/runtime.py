"""Process runtime: runs the node's workers from their pod spec as local processes.

Each worker runs under a small launcher (``lc/_launcher.py``) that leads a new session, so
workers outlive the LC and a stop signals the whole process group. Worker state (pid, process
start time, spec hash, phase, restarts) lives in Redis, so a restarted LC adopts the workers that
still run and learns how the others ended from the exit file the launcher wrote.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import redis
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from apis import OwnerReference, WorkerPod
from lc import podlogs, workerspec
from lc.metrics import LCMetrics
from lc.workerspec import parse_worker_spec

log = logging.getLogger(__name__)

_LAUNCHER = Path(__file__).with_name("_launcher.py")
# How long to wait for a group that was sent SIGKILL; the kernel needs only a moment.
_KILL_WAIT = 5.0


class WorkerPhase(StrEnum):
    """The phase of a worker, as for a pod."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class WorkerStatus(BaseModel):
    """A snapshot of one worker, handed to the status callback on every change."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    name: str
    namespace: str
    phase: WorkerPhase
    restarts: int = 0
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    pid: int | None = None  # the launcher's pid, which leads the worker's process group
    owner: OwnerReference | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class _Record(BaseModel):
    """What Redis keeps of a worker (the LC's local cache)."""

    spec: dict[str, Any]
    env: dict[str, str] = Field(default_factory=dict)
    spec_hash: str
    phase: WorkerPhase = WorkerPhase.PENDING
    restarts: int = 0
    uid: str | None = None  # names the worker's log directory; None in earlier versions' records
    failures: int = 0  # consecutive exits, for the back-off
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    pid: int | None = None
    start_ticks: int | None = None  # process start time (clock ticks since boot) against pid reuse
    started_at: float | None = None
    finished_at: float | None = None
    next_start: float | None = None


@dataclass
class _Worker:
    spec: WorkerPod
    record: _Record
    proc: subprocess.Popen[bytes] | None = None  # None when adopted from an earlier LC


StatusCallback = Callable[[WorkerStatus], None]


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, process group, start ticks) of a process, or None if there is none."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    # After the command name: state(3) ppid(4) pgrp(5) ... starttime(22).
    return fields[0], int(fields[2]), int(fields[19])


def _alive(pid: int, start_ticks: int | None) -> bool:
    """Whether ``pid`` is the same live (not zombie) process that started at ``start_ticks``."""
    stat = _proc_stat(pid)
    if stat is None or stat[0] in ("Z", "X"):
        return False
    return start_ticks is None or stat[2] == start_ticks


def _group_alive(pgid: int) -> bool:
    """Whether a process group still has a member that is not a zombie."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None and stat[1] == pgid and stat[0] not in ("Z", "X"):
                return True
    return False


def _reap(pid: int) -> None:
    """Collect a zombie if this process happens to be its parent."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _labels(spec: WorkerPod, node: str, **extra: object) -> dict[str, object]:
    """The searchable log labels of a worker (``sedna_cli.logs``), plus ``extra``."""
    labels: dict[str, object] = {"namespace": spec.namespace, "worker": spec.name, "node": node}
    if spec.owner is not None:
        labels.update(job=spec.owner.name, kind=spec.owner.kind)
    return {**labels, **extra}


def _ts(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


class ProcessRuntime:
    """Runs workers as local processes; ``ensure``/``remove`` are idempotent (level-triggered).

    ``on_status`` is called with a :class:`WorkerStatus` whenever a worker changes phase, exit
    code or restart count (from the caller's thread or the monitor thread; never under a lock).
    """

    def __init__(
        self,
        client: redis.Redis,
        data_dir: Path | str,
        *,
        node: str,
        on_status: StatusCallback | None = None,
        grace_period: float = 30.0,
        poll_interval: float = 0.5,
        backoff_base: float = 10.0,
        backoff_max: float = 300.0,
        backoff_reset_after: float = 600.0,
        python: str = sys.executable,
        metrics: LCMetrics | None = None,
        key_prefix: str = "sedna:lc",
    ) -> None:
        self._redis = client
        self._data_dir = Path(data_dir)
        self._node = node
        self._on_status = on_status
        self._grace = grace_period
        self._poll_interval = poll_interval
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._backoff_reset_after = backoff_reset_after
        self._python = python
        self._metrics = metrics
        self._key = f"{key_prefix}:{node}:workers"
        self._workers: dict[str, _Worker] = {}
        self._dirty: set[str] = set()
        self._outbox: deque[WorkerStatus] = deque()  # statuses waiting for the callback
        # Serialises callbacks so they see statuses in order; re-entrant so a callback may
        # call ensure/remove.
        self._emit_lock = threading.RLock()
        self._lock = threading.RLock()  # guards _workers, _dirty, _outbox; held briefly
        self._ops = threading.Lock()  # serialises ensure/remove (which may wait for a stop)
        self._loaded = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ----- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Load the workers recorded in Redis (adopting live ones) and start monitoring.

        Raises ``redis.RedisError`` if Redis cannot be read: without the records the runtime
        could start a worker twice, so it does not run blind.
        """
        with self._ops:
            self._load()
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name=f"lc-runtime-{self._node}", daemon=True
            )
            self._thread.start()

    def close(self) -> None:
        """Stop monitoring; the workers keep running and a later runtime adopts them."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    # ----- desired state ---------------------------------------------------------------------

    def ensure(
        self, spec: WorkerPod | Mapping[str, Any], env: Mapping[str, str] | None = None
    ) -> WorkerStatus:
        """Make the worker exist as specified: start it, or restart it if its spec changed.

        ``env`` is added to the template's ``env`` and wins over it (LC_SERVER, WORKER_NAME...).
        A worker that already runs or ended with the same spec is left alone. Raises
        :class:`lc.errors.InvalidWorkerSpec` naming the bad field.
        """
        worker_spec = parse_worker_spec(spec)
        extra = {str(k): str(v) for k, v in (env or {}).items()}
        digest = workerspec.spec_hash(worker_spec, extra)
        key = worker_spec.key
        with self._ops:
            self._load()
            with self._lock:
                current = self._workers.get(key)
                if current is not None and current.record.spec_hash == digest:
                    return self._status(current)
                if current is not None:
                    del self._workers[key]
            if current is not None:
                log.info("worker spec changed, restarting", extra=_labels(worker_spec, self._node))
                self._terminate(current)
            record = _Record(
                spec=worker_spec.to_api(),
                env=extra,
                spec_hash=digest,
                uid=str(uuid.uuid4()),
            )
            worker = _Worker(spec=worker_spec, record=record)
            with self._lock:
                self._workers[key] = worker
                self._launch(worker, restart=False)
                self._persist(key)
                status = self._status(worker)
                self._notify(status)
                self._update_gauge()
        self._drain()
        return status

    def remove(self, name: str, namespace: str = "default") -> bool:
        """Stop the worker (SIGTERM, SIGKILL after the grace period) and forget it.

        Returns False if there was no such worker. Blocks until the process group is gone.
        """
        key = f"{namespace}/{name}"
        with self._ops:
            self._load()
            with self._lock:
                worker = self._workers.pop(key, None)
                if worker is None:
                    return False
            self._terminate(worker)
            with self._lock:
                self._persist(key)
                self._update_gauge()
            with contextlib.suppress(OSError):
                self._exit_file(worker.spec).unlink()
        log.info("worker removed", extra=_labels(worker.spec, self._node))
        return True

    def remove_all(self) -> None:
        """Stop and forget every worker (used when the whole node shuts down)."""
        with self._ops:
            self._load()
        with self._lock:
            keys = list(self._workers)
        for key in keys:
            namespace, name = key.split("/", 1)
            self.remove(name, namespace)

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

    def log_path(
        self, name: str, namespace: str = "default", *, previous: bool = False
    ) -> Path | None:
        """The file of the worker's current run (``previous``: of the run before), or None.

        A worker this runtime no longer runs is looked up on disk: its newest run's file.
        """
        with self._lock:
            worker = self._workers.get(f"{namespace}/{name}")
            current = self._log_file(worker).path if worker is not None else None
        if current is not None and not previous:
            return current
        earlier = [p for p in podlogs.runs(self.log_root, namespace, name) if p != current]
        if current is None and not previous:
            return earlier[-1] if earlier else None
        if current is None:
            earlier = earlier[:-1]
        return earlier[-1] if earlier else None

    def log_running(self, name: str, namespace: str, path: Path) -> bool:
        """Whether the run writing ``path`` may still write to it (running or starting)."""
        with self._lock:
            worker = self._workers.get(f"{namespace}/{name}")
            if worker is None or self._log_file(worker).path != path:
                return False
            return worker.record.phase == WorkerPhase.RUNNING

    @property
    def log_root(self) -> Path:
        """The node's log directory (``var/log`` in the data directory, a kubelet's layout)."""
        return self._data_dir / podlogs.LOG_ROOT

    def _log_file(self, worker: _Worker) -> podlogs.LogFile:
        spec, record = worker.spec, worker.record
        return podlogs.LogFile(
            root=self.log_root,
            namespace=spec.namespace,
            pod=spec.name,
            uid=record.uid or "legacy",
            container=spec.container.name or podlogs.DEFAULT_CONTAINER,
            restart=record.restarts,
        )

    # ----- monitoring ------------------------------------------------------------------------

    def poll(self) -> None:
        """One monitoring pass: notice exits, apply restart policies, start due restarts."""
        changed = False
        now = time.time()
        with self._lock:
            for key, worker in list(self._workers.items()):
                record = worker.record
                if record.phase == WorkerPhase.RUNNING:
                    ended = self._check_exit(worker)
                    if ended is not None:
                        self._handle_exit(worker, *ended, now=now)
                        self._persist(key)
                        self._notify(self._status(worker))
                        changed = True
                elif record.phase == WorkerPhase.PENDING and (record.next_start or 0) <= now:
                    self._launch(worker, restart=record.started_at is not None)
                    self._persist(key)
                    self._notify(self._status(worker))
                    changed = True
            self._flush()
            if changed:
                self._update_gauge()
        self._drain()

    def _run(self) -> None:
        while not self._stop.wait(self._poll_interval):
            try:
                self.poll()
            except Exception:
                log.exception("process runtime poll failed", extra={"node": self._node})

    # ----- internals -------------------------------------------------------------------------

    def _exit_file(self, spec: WorkerPod) -> Path:
        return self._data_dir / "run" / spec.namespace / f"{spec.name}.exit"

    def _workdir(self, spec: WorkerPod) -> Path:
        if spec.container.working_dir:
            return Path(spec.container.working_dir)
        path = self._data_dir / "work" / spec.namespace / spec.name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _launch(self, worker: _Worker, *, restart: bool) -> None:
        """Start the worker's process (under the state lock); a start error counts as an exit."""
        spec, record = worker.spec, worker.record
        argv = workerspec.argv(spec, self._python)
        # Lowest to highest: the LC's environment, defaults (unbuffered output so the log
        # follows the worker; the worker's identity), the template's env, the caller's env.
        defaults = {"PYTHONUNBUFFERED": "1", "WORKER_NAME": spec.name, "NAMESPACE": spec.namespace}
        env = {**os.environ, **defaults, **workerspec.template_env(spec), **record.env}
        unresolved = workerspec.unresolved_env(spec)
        if unresolved:
            log.warning(
                "env entries with valueFrom are not set by the process runtime",
                extra=_labels(spec, self._node, names=unresolved),
            )
        exit_file = self._exit_file(spec)
        now = time.time()
        if restart:
            record.restarts += 1
            if self._metrics is not None:
                self._metrics.worker_restarts.labels(
                    namespace=spec.namespace, worker=spec.name
                ).inc()
        record.started_at = now
        record.finished_at = None
        record.next_start = None
        record.exit_code = None
        try:
            log_path = self._log_file(worker).prepare(
                {k: str(v) for k, v in _labels(spec, self._node).items()}
            )
            exit_file.parent.mkdir(parents=True, exist_ok=True)
            exit_file.unlink(missing_ok=True)
            # The launcher writes the worker's output as CRI lines; its own (a crash) goes raw.
            with open(log_path, "ab") as log_file:
                launcher = [self._python, "-I", str(_LAUNCHER), str(exit_file)]
                proc = subprocess.Popen(
                    [*launcher, "--log", str(log_path), "--", *argv],
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    cwd=self._workdir(spec),
                    env=env,
                    start_new_session=True,
                    close_fds=True,
                )
        except OSError as exc:
            log.error("worker could not start", extra=_labels(spec, self._node, error=str(exc)))
            self._handle_exit(worker, None, f"cannot start worker: {exc}", now=now)
            record.reason = "StartError"
            return
        worker.proc = proc
        stat = _proc_stat(proc.pid)
        record.pid = proc.pid
        record.start_ticks = stat[2] if stat is not None else None
        record.phase = WorkerPhase.RUNNING
        record.reason = None
        record.message = None
        log.info(
            "worker started",
            extra=_labels(spec, self._node, pid=proc.pid, restarts=record.restarts),
        )

    def _check_exit(self, worker: _Worker) -> tuple[int | None, str | None] | None:
        """None while the worker runs, else (exit code or None if unknown, error message)."""
        record = worker.record
        if worker.proc is not None:
            returncode = worker.proc.poll()
            if returncode is None:
                return None
        else:
            if record.pid is not None and _alive(record.pid, record.start_ticks):
                return None
            if record.pid is not None:
                _reap(record.pid)
            returncode = None
        worker.proc = None
        if record.pid is not None:
            self._kill_leftovers(worker.spec, record.pid)
        return self._read_exit_file(worker.spec, returncode)

    @staticmethod
    def _kill_leftovers(spec: WorkerPod, pgid: int) -> None:
        """Kill what the worker left in its group, as a container's end kills its processes.

        The launcher (pid == pgid) has ended; while members remain, the kernel does not hand
        that number to a new process, so a live group without a leader is the worker's own.
        """
        leader = _proc_stat(pgid)
        if leader is not None and leader[0] not in ("Z", "X"):
            return  # a new process took the number: not ours
        if _group_alive(pgid):
            log.info("killing processes the worker left behind", extra={"worker": spec.key})
            ProcessRuntime._signal_group(pgid, signal.SIGKILL)

    def _read_exit_file(
        self, spec: WorkerPod, launcher_code: int | None
    ) -> tuple[int | None, str | None]:
        path = self._exit_file(spec)
        try:
            data = json.loads(path.read_text())
            return int(data["exitCode"]), data.get("error")
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("unreadable exit file", extra={"path": str(path), "error": str(exc)})
        if launcher_code is not None:
            return launcher_code, None
        return None, "the worker ended while the LC was away and its exit code is unknown"

    def _handle_exit(
        self, worker: _Worker, code: int | None, error: str | None, *, now: float
    ) -> None:
        """Record an exit and decide, by restart policy, between an end phase and a back-off."""
        record, policy = worker.record, worker.spec.restart_policy
        record.exit_code = code
        record.finished_at = now
        record.pid = None
        record.start_ticks = None
        succeeded = code == 0
        described = error or (
            f"exited with code {code}" if code is not None and code >= 0 else None
        )
        if code is not None and code < 0:
            described = f"killed by signal {-code}"
        if policy == "Always" or (policy == "OnFailure" and not succeeded):
            ran = now - (record.started_at or now)
            if ran >= self._backoff_reset_after:
                record.failures = 0
            record.failures += 1
            delay = min(self._backoff_base * 2 ** (record.failures - 1), self._backoff_max)
            record.phase = WorkerPhase.PENDING
            record.reason = "BackOff"
            record.message = f"{described or 'ended'}; restarting in {delay:g}s"
            record.next_start = now + delay
        else:
            record.phase = WorkerPhase.SUCCEEDED if succeeded else WorkerPhase.FAILED
            record.reason = "Completed" if succeeded else "Error"
            record.message = described
            record.next_start = None
        log.info(
            "worker exited",
            extra=_labels(worker.spec, self._node, exit_code=code, phase=str(record.phase)),
        )

    def _terminate(self, worker: _Worker) -> None:
        """SIGTERM the worker's process group, SIGKILL it after the grace period."""
        record = worker.record
        labels = _labels(worker.spec, self._node)
        pid = record.pid
        if pid is None:
            return
        stat = _proc_stat(pid)
        if stat is not None and record.start_ticks is not None and stat[2] != record.start_ticks:
            log.warning("pid was reused by another process; not signalling", extra={"pid": pid})
            return
        pgid = pid  # the launcher leads its own session and group
        self._signal_group(pgid, signal.SIGTERM)
        if not self._wait_group(worker, pgid, self._grace):
            log.warning("worker ignored SIGTERM, killing", extra={**labels, "pid": pid})
            self._signal_group(pgid, signal.SIGKILL)
            if not self._wait_group(worker, pgid, _KILL_WAIT):
                log.error("worker process group survived SIGKILL", extra=labels)
        record.pid = None
        worker.proc = None

    @staticmethod
    def _signal_group(pgid: int, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signum)

    @staticmethod
    def _wait_group(worker: _Worker, pgid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if worker.proc is not None:
                worker.proc.poll()
            else:
                _reap(pgid)
            if not _group_alive(pgid):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def _status(self, worker: _Worker) -> WorkerStatus:
        record = worker.record
        return WorkerStatus(
            name=worker.spec.name,
            namespace=worker.spec.namespace,
            phase=record.phase,
            restarts=record.restarts,
            exit_code=record.exit_code,
            reason=record.reason,
            message=record.message,
            pid=record.pid,
            owner=worker.spec.owner,
            started_at=_ts(record.started_at),
            finished_at=_ts(record.finished_at),
        )

    def _notify(self, status: WorkerStatus) -> None:
        """Queue a status for the callback (under the state lock, so in transition order)."""
        if self._on_status is not None:
            self._outbox.append(status)

    def _drain(self) -> None:
        """Hand queued statuses to the callback in order, outside the state lock."""
        if self._on_status is None:
            return
        with self._emit_lock:
            while True:
                with self._lock:
                    if not self._outbox:
                        return
                    status = self._outbox.popleft()
                try:
                    self._on_status(status)
                except Exception:
                    log.exception(
                        "status callback failed",
                        extra={"worker": f"{status.namespace}/{status.name}"},
                    )

    def _update_gauge(self) -> None:
        if self._metrics is not None:
            self._metrics.set_worker_phases(str(w.record.phase) for w in self._workers.values())

    # ----- Redis -----------------------------------------------------------------------------

    def _persist(self, key: str) -> None:
        """Write (or delete) one worker's record; on a Redis outage retry at the next poll."""
        self._dirty.add(key)
        self._flush()

    def _flush(self) -> None:
        for key in list(self._dirty):
            worker = self._workers.get(key)
            try:
                if worker is None:
                    self._redis.hdel(self._key, key)
                else:
                    self._redis.hset(self._key, key, worker.record.model_dump_json())
            except redis.RedisError as exc:
                log.warning(
                    "cannot save worker state, will retry", extra={"worker": key, "error": str(exc)}
                )
                return
            self._dirty.discard(key)

    def _load(self) -> None:
        """Read the recorded workers once: adopt live ones, settle the ones that ended."""
        if self._loaded:
            return
        raw = self._redis.hgetall(self._key)
        now = time.time()
        with self._lock:
            for field, value in sorted(raw.items()):
                key = field.decode() if isinstance(field, bytes) else str(field)
                try:
                    record = _Record.model_validate_json(value)
                    spec = WorkerPod.model_validate(record.spec)
                except ValidationError as exc:
                    log.error("dropping unreadable worker record", extra={"worker": key})
                    log.debug("record error: %s", exc)
                    self._dirty.add(key)
                    continue
                worker = _Worker(spec=spec, record=record)
                self._workers[key] = worker
                if record.uid is None:  # from an earlier version: its log moves to the layout
                    record.uid = str(uuid.uuid4())
                    self._dirty.add(key)
                    if podlogs.adopt_legacy(self._data_dir, self._log_file(worker)):
                        moved = _labels(spec, self._node)
                        log.info("moved a worker log to the pod log layout", extra=moved)
                if record.phase == WorkerPhase.RUNNING:
                    ended = self._check_exit(worker)
                    if ended is None:
                        adopted = _labels(spec, self._node, pid=record.pid)
                        log.info("adopted running worker", extra=adopted)
                    else:
                        self._handle_exit(worker, *ended, now=now)
                        self._dirty.add(key)
                self._notify(self._status(worker))
            self._flush()
            self._loaded = True
            self._update_gauge()
        self._drain()
