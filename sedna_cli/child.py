"""One component of ``sedna up`` in a process of its own (the child side of
`sedna_cli.procs.ComponentProcess`).

`run_child` runs in a process forked by the forkserver. It leaves the terminal's session (so
Ctrl-C reaches only ``sedna up``), takes the parent's environment, moves to the component's
directory, sends its output to the component's log file (JSON lines), builds and starts the
component and tells the parent ``ready`` (or ``failed`` with the reason) over the pipe.

How it stops:
- ``stop`` on the pipe: the whole stack goes down; the component's ``shutdown`` runs (an LC
  stops its workers);
- SIGTERM, SIGINT, or the pipe's end (the parent died, e.g. kill -9): a plain ``stop()``, so
  an LC leaves its workers running for the next ``sedna up`` to adopt. No child outlives its
  parent's crash by more than its own stop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from multiprocessing.connection import Connection

from pydantic import ValidationError

from apis import InvalidSettings
from sedna_cli import logs
from sedna_cli.components import COMPONENTS, ChildEvent, ChildStart, Component, ComponentKind

log = logging.getLogger("sedna.child")


class _Channel:
    """Events to the parent; a parent that is gone is not an error."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    def emit(self, event: ChildEvent) -> None:
        with self._lock, contextlib.suppress(OSError):
            self._conn.send_bytes(event.model_dump_json(exclude_none=True).encode())


def _detach(start: ChildStart) -> None:
    """A session, environment, directory and output of its own."""
    os.setsid()
    os.environ.clear()
    os.environ.update(start.environ)
    os.chdir(start.directory)
    out = os.open(start.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    os.close(null)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - lives as the process
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115


def _build(kind: ComponentKind, start: ChildStart) -> Component:
    model = kind.settings()
    build = getattr(model, "build", None)  # ComponentSettings name the flag of a bad value
    settings = build(start.settings) if build else model.model_validate(start.settings)
    return kind.build(settings)


def run_child(conn: Connection, start_json: str) -> None:
    """Run the component described by ``start_json`` until told to stop."""
    channel = _Channel(conn)
    try:
        start = ChildStart.model_validate_json(start_json)
        kind = COMPONENTS.get(start.component)
        if kind is None:
            raise InvalidSettings(
                f"unknown component {start.component!r}; known: {', '.join(sorted(COMPONENTS))}"
            )
        _detach(start)
    except (ValidationError, InvalidSettings, OSError) as exc:
        channel.emit(ChildEvent(event="failed", error=str(exc)))
        sys.exit(2)
    logs.configure(start.log_level, json_lines=True)
    stop = threading.Event()
    full = threading.Event()

    def read_commands() -> None:
        while True:
            try:
                command = conn.recv_bytes()
            except (EOFError, OSError):
                break  # the parent is gone
            if command == b"stop":
                full.set()
                break
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    threading.Thread(target=read_commands, name="child-commands", daemon=True).start()
    try:
        component = _build(kind, start)
        if kind.connect is not None:
            kind.connect(component, channel.emit)
        component.start()
    except Exception as exc:
        log.exception("%s failed to start", start.component)
        channel.emit(ChildEvent(event="failed", error=f"{type(exc).__name__}: {exc}"))
        sys.exit(1)
    channel.emit(ChildEvent(event="ready"))
    log.info("%s running in process %d", start.component, os.getpid())
    stop.wait()
    whole_stack = full.is_set()
    log.info("%s stopping%s", start.component, " with the stack" if whole_stack else "")
    if whole_stack and kind.shutdown is not None:
        kind.shutdown(component)
    else:
        component.stop()
    logging.shutdown()
