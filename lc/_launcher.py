"""Runs one worker command and records how it ended (started by ``lc.runtime``, stdlib only).

Usage: ``python _launcher.py EXIT_FILE -- COMMAND [ARGS...]``

The runtime starts this launcher as the leader of a new session, so the worker survives the
LC and the whole group can be signalled at once. The launcher writes the worker's exit status
to EXIT_FILE (JSON ``{"exitCode": int, "error": str | null}``), so an LC that restarted while
the worker ran still learns how it ended.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys


def _record(exit_file: str, code: int, error: str | None) -> None:
    tmp = f"{exit_file}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"exitCode": code, "error": error}, fh)
    os.replace(tmp, exit_file)


def _ignore(signum: int, frame: object) -> None:
    # The signal reaches the worker through its process group; the launcher stays to record
    # how the worker ended. A Python handler (not SIG_IGN) is reset by exec in the worker.
    return None


def main(argv: list[str]) -> int:
    """Start the worker, wait for it and record its exit status."""
    if len(argv) < 4 or argv[2] != "--":
        sys.stderr.write("usage: _launcher.py EXIT_FILE -- COMMAND [ARGS...]\n")
        return 2
    exit_file, command = argv[1], argv[3:]
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _ignore)
    try:
        child = subprocess.Popen(command)
    except OSError as exc:
        code = 127 if isinstance(exc, FileNotFoundError) else 126
        error = f"cannot start {command[0]!r}: {exc.strerror or exc}"
        sys.stderr.write(f"sedna-lc: {error}\n")
        _record(exit_file, code, error)
        return code
    code = child.wait()
    _record(exit_file, code, None)
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
