"""Runs one worker command and records how it ended (started by ``lc.runtime``, stdlib only).

Usage: ``python _launcher.py EXIT_FILE [--log LOG_FILE] -- COMMAND [ARGS...]``

The runtime starts this launcher as the leader of a new session, so the worker survives the
LC and the whole group can be signalled at once. The launcher writes the worker's exit status
to EXIT_FILE (JSON ``{"exitCode": int, "error": str | null}``), so an LC that restarted while
the worker ran still learns how it ended.

With ``--log``, the launcher is also the worker's log shim (a CRI runtime's job): it appends the
worker's stdout and stderr to LOG_FILE as CRI log lines (``lc.podlogs``) and records the exit
only once both streams are drained, so whoever sees the exit sees the whole log. Without it,
the worker inherits the launcher's output (launchers of earlier versions worked so).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from typing import IO

# A CRI runtime splits longer lines into partial ("P") entries of this size.
_MAX_LINE = 16 * 1024
# How long the streams may stay open after the worker ended (a child it left may hold them).
_DRAIN_WAIT = 5.0


def _record(exit_file: str, code: int, error: str | None) -> None:
    tmp = f"{exit_file}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"exitCode": code, "error": error}, fh)
    os.replace(tmp, exit_file)


def _ignore(signum: int, frame: object) -> None:
    # The signal reaches the worker through its process group; the launcher stays to record
    # how the worker ended. A Python handler (not SIG_IGN) is reset by exec in the worker.
    return None


def _cri(stream: str, text: bytes, partial: bool) -> bytes:
    """One CRI log line (the format ``lc.podlogs`` reads)."""
    ns = time.time_ns()
    stamp = datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    tag = b"P" if partial else b"F"
    return f"{stamp}.{ns % 1_000_000_000:09d}Z {stream} ".encode() + tag + b" " + text + b"\n"


def _pump(stream: str, pipe: IO[bytes], log_fd: int) -> None:
    """Copy one stream to the log, a CRI line per line (one append each: lines never mix)."""
    while chunk := pipe.readline(_MAX_LINE):
        partial = not chunk.endswith(b"\n")
        text = chunk if partial else chunk[:-1]
        # A chunk without its newline is a split long line, unless the stream ended there.
        os.write(log_fd, _cri(stream, text, partial and len(chunk) >= _MAX_LINE))


def _run(command: list[str], log_file: str | None) -> tuple[int, str | None]:
    """Run the worker (its output to ``log_file`` as CRI lines, if given); its exit status."""
    log_fd = None
    if log_file is not None:
        log_fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    pipe = subprocess.PIPE if log_fd is not None else None
    try:
        child = subprocess.Popen(command, stdout=pipe, stderr=pipe)
    except OSError as exc:
        code = 127 if isinstance(exc, FileNotFoundError) else 126
        error = f"cannot start {command[0]!r}: {exc.strerror or exc}"
        line = f"sedna-lc: {error}".encode()
        if log_fd is not None:
            os.write(log_fd, _cri("stderr", line, False))
        else:
            sys.stderr.write(line.decode() + "\n")
        return code, error
    pumps = []
    if log_fd is not None:
        for name, stream in (("stdout", child.stdout), ("stderr", child.stderr)):
            assert stream is not None
            pump = threading.Thread(target=_pump, args=(name, stream, log_fd), daemon=True)
            pump.start()
            pumps.append(pump)
    code = child.wait()
    deadline = time.monotonic() + _DRAIN_WAIT
    for pump in pumps:
        pump.join(max(deadline - time.monotonic(), 0))
    return code, None


def main(argv: list[str]) -> int:
    """Start the worker, wait for it and record its exit status."""
    log_file = None
    if len(argv) >= 4 and argv[2] == "--log":
        log_file = argv[3]
        argv = argv[:2] + argv[4:]
    if len(argv) < 4 or argv[2] != "--":
        sys.stderr.write("usage: _launcher.py EXIT_FILE [--log LOG_FILE] -- COMMAND [ARGS...]\n")
        return 2
    exit_file, command = argv[1], argv[3:]
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _ignore)
    code, error = _run(command, log_file)
    _record(exit_file, code, error)
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
