"""A component of ``sedna up`` in a child process, with everything a `LocalService` has.

`ComponentProcess` runs one component of `sedna_cli.components.COMPONENTS` in a process of its
own: PID file with the process identity in the component's directory, output (JSON logs) in
``<component>.log`` there, a leftover of a crashed run stopped before a new start, restarts by
`ServiceSupervisor`.

Children are forked by a multiprocessing *forkserver* that imported every component once
(``PRELOAD``), so starting one costs a fork, not a second of imports per process; the box's
CPU goes to the components, not to loading them. Each child gets its settings (secrets
included) and the parent's environment over a private pipe, never on a command line; the same
pipe carries the stop command down and the child's events up (`sedna_cli.child`).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from multiprocessing import forkserver
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import IO

from pydantic import BaseModel, ValidationError

from broker.localservices import LocalService, ServiceError
from sedna_cli.child import run_child
from sedna_cli.components import COMPONENTS, PRELOAD, ChildEvent, ChildStart, settings_values

__all__ = ["ComponentProcess", "prepare_children"]

_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload(list(PRELOAD))


def prepare_children() -> None:
    """Start the forkserver now (it imports ``PRELOAD`` while the caller does other work), so
    the first `ComponentProcess` does not wait for it."""
    forkserver.ensure_running()


class _Forked:
    """`subprocess.Popen`'s interface (what `LocalService` uses) over a forked child."""

    def __init__(self, process: BaseProcess) -> None:
        self._process = process
        assert process.pid is not None
        self.pid: int = process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        code = self._process.exitcode
        if code is None:
            raise subprocess.TimeoutExpired(f"component process {self.pid}", timeout or 0)
        return code

    def send_signal(self, sig: int) -> None:
        if self._process.exitcode is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ComponentProcess(LocalService):
    """One component (a name of `COMPONENTS`) with its settings, run as a child process.

    ``directory`` holds ``<component>.pid`` and ``<component>.log`` and is the child's working
    directory; ``port`` is the one the component serves on (checked free before start).
    ``on_event`` gets the child's events other than ``ready`` (e.g. the GM's node states).
    """

    apt_package = "python3"

    def __init__(
        self,
        component: str,
        settings: BaseModel,
        directory: Path,
        port: int,
        *,
        label: str | None = None,
        log_level: str = "INFO",
        start_timeout: float = 90.0,
        stop_timeout: float = 15.0,
        on_event: Callable[[ChildEvent], None] | None = None,
    ) -> None:
        if component not in COMPONENTS:
            raise ValueError(f"unknown component {component!r}")
        self.binary = component
        self.label = label or component
        self.stop_timeout = stop_timeout
        self.on_event = on_event
        self._component = component
        self._settings = settings_values(settings)
        self._log_level = log_level
        self._conn: Connection | None = None
        self._ready_seen = threading.Event()
        self._failure: str | None = None
        super().__init__(directory, port, start_timeout=start_timeout)

    @property
    def name(self) -> str:
        """The component and its address, for messages."""
        return f"{self.label} on {self.host}:{self.port}"

    def _find_program(self) -> str:
        return "forkserver"

    def _command(self) -> list[str]:
        return []

    def _spawn(self, out: IO[bytes]) -> _Forked:
        start = ChildStart(
            component=self._component,
            settings=self._settings,
            log_level=self._log_level,
            directory=str(self.directory),
            log_file=str(self.log_path),
            environ=dict(os.environ),
        )
        self._ready_seen.clear()
        self._failure = None
        ours, theirs = _CONTEXT.Pipe(duplex=True)
        process = _CONTEXT.Process(
            target=run_child, args=(theirs, start.model_dump_json()), name=self.label
        )
        process.start()
        theirs.close()  # the child holds the only other end: its EOF is our death
        self._conn = ours
        threading.Thread(
            target=self._read_events, args=(ours,), name=f"events-{self.label}", daemon=True
        ).start()
        return _Forked(process)

    def _read_events(self, conn: Connection) -> None:
        while True:
            try:
                data = conn.recv_bytes()
            except (EOFError, OSError):
                return
            try:
                event = ChildEvent.model_validate_json(data)
            except ValidationError:
                continue
            if event.event == "ready":
                self._ready_seen.set()
            elif event.event == "failed":
                self._failure = event.error
            elif self.on_event is not None:
                self.on_event(event)

    def _ready(self) -> bool:
        return self._ready_seen.is_set()

    def wait_ready(self) -> ComponentProcess:
        """Wait for ``ready``; a child that could not start raises with its reason."""
        try:
            super().wait_ready()
        except ServiceError as exc:
            if self._failure:
                raise ServiceError(f"{self.name} could not start: {self._failure}") from exc
            raise
        return self

    def _request_stop(self, process: object) -> None:
        """``stop`` on the pipe: the stack goes down (an LC stops its workers too)."""
        try:
            assert self._conn is not None
            self._conn.send_bytes(b"stop")
        except (OSError, AssertionError):
            if isinstance(process, _Forked):
                process.terminate()
