"""Worker log files in the kubelet's layout, so promtail's Kubernetes discovery reads them as is.

Under a node's ``<data dir>/var/log`` (mount it at ``/var/log`` and the paths are a kubelet's):

- ``pods/<namespace>_<pod>_<uid>/<container>/<restart>.log``: the output of one run, as CRI log
  lines ``<RFC3339Nano time> <stdout|stderr> <F|P> <text>`` (``P``: a partial line, continued by
  the next entry). A restart writes the next file, so earlier runs are kept.
- ``containers/<pod>_<namespace>_<container>-<id>.log``: a relative link to each run's file.
- ``targets/<namespace>_<pod>.json``: a promtail ``file_sd`` target naming the worker's files
  with the labels the pod path cannot carry (``job``, ``kind``, ``worker``, ``node``).

Data directories of earlier versions kept ``logs/<namespace>/<pod>.log`` (raw lines); the
runtime moves such a file into this layout (:func:`adopt_legacy`), and the readers here take a
line that is not CRI as raw text.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

#: The log root inside a node's data directory.
LOG_ROOT = Path("var") / "log"
#: Where data directories of earlier versions kept a worker's output.
LEGACY_ROOT = Path("logs")
DEFAULT_CONTAINER = "worker"

_CRI = re.compile(rb"^(?P<time>\S+) (?P<stream>stdout|stderr) (?P<tag>[FP])(?: (?P<text>.*))?$")
# What promtail's kubernetes SD relabelling reads from a path (namespace, pod, uid, container).
_POD_FILE = re.compile(
    r"(?:^|/)pods/(?P<namespace>[^_/]+)_(?P<pod>[^_/]+)_(?P<uid>[^_/]+)/(?P<container>[^/]+)/"
    r"(?P<restart>\d+)\.log$"
)


@dataclass(frozen=True)
class LogFile:
    """One run of one worker's container: where its output goes and what labels it."""

    root: Path  # <data dir>/var/log
    namespace: str
    pod: str
    uid: str
    container: str
    restart: int

    @property
    def pod_dir(self) -> Path:
        """``pods/<namespace>_<pod>_<uid>``."""
        return self.root / "pods" / f"{self.namespace}_{self.pod}_{self.uid}"

    @property
    def path(self) -> Path:
        """``pods/<namespace>_<pod>_<uid>/<container>/<restart>.log``."""
        return self.pod_dir / self.container / f"{self.restart}.log"

    @property
    def container_id(self) -> str:
        """A stable 64-hex id of this run (a CRI container id's shape)."""
        seed = f"{self.uid}/{self.container}/{self.restart}".encode()
        return hashlib.sha256(seed).hexdigest()

    @property
    def link(self) -> Path:
        """``containers/<pod>_<namespace>_<container>-<id>.log``."""
        name = f"{self.pod}_{self.namespace}_{self.container}-{self.container_id}.log"
        return self.root / "containers" / name

    def prepare(self, labels: Mapping[str, str]) -> Path:
        """Create the directories, the ``containers/`` link and the promtail target; the path."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.link.parent.mkdir(parents=True, exist_ok=True)
        if not self.link.is_symlink():
            with contextlib.suppress(FileExistsError):
                self.link.symlink_to(os.path.relpath(self.path, self.link.parent))
        target = {
            "targets": ["localhost"],
            "labels": {
                "__path__": str(self.pod_dir / "*" / "*.log"),
                "namespace": self.namespace,
                "pod": self.pod,
                "container": self.container,
                "worker": self.pod,
                **labels,
            },
        }
        targets = self.root / "targets" / f"{self.namespace}_{self.pod}.json"
        targets.parent.mkdir(parents=True, exist_ok=True)
        tmp = targets.with_suffix(".tmp")
        tmp.write_text(json.dumps([target], indent=2, sort_keys=True) + "\n")
        tmp.replace(targets)
        return self.path


def parse_path(path: Path | str) -> dict[str, str] | None:
    """The labels promtail's Kubernetes relabelling gets from a pod log path, or None."""
    match = _POD_FILE.search(str(path))
    return match.groupdict() if match else None


def legacy_path(data_dir: Path, namespace: str, pod: str) -> Path:
    """Where an earlier version wrote the worker's output."""
    return data_dir / LEGACY_ROOT / namespace / f"{pod}.log"


def adopt_legacy(data_dir: Path, log_file: LogFile) -> bool:
    """Move an earlier version's log of the worker to ``log_file`` (a running worker keeps
    writing to it: a rename keeps the open file). False when there is none."""
    old = legacy_path(data_dir, log_file.namespace, log_file.pod)
    if not old.is_file() or log_file.path.exists():
        return False
    log_file.path.parent.mkdir(parents=True, exist_ok=True)
    os.replace(old, log_file.path)
    return True


def runs(root: Path, namespace: str, pod: str) -> list[Path]:
    """Every run's file of a worker on this node, oldest first (by incarnation, then restart)."""
    found: list[tuple[float, int, Path]] = []
    for pod_dir in (root / "pods").glob(f"{namespace}_{pod}_*"):
        if pod_dir.name.count("_") != 2:
            continue
        try:
            born = pod_dir.stat().st_mtime
        except OSError:
            continue
        for path in pod_dir.glob("*/*.log"):
            if path.stem.isdigit():
                found.append((born, int(path.stem), path))
    return [path for _, _, path in sorted(found)]


# --- CRI lines --------------------------------------------------------------------------------


def cri_time(now_ns: int | None = None) -> str:
    """RFC 3339 with nanoseconds, UTC, as CRI runtimes write it."""
    ns = time.time_ns() if now_ns is None else now_ns
    stamp = datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ns % 1_000_000_000:09d}Z"


def cri_line(stream: str, text: bytes, *, partial: bool = False) -> bytes:
    """One CRI log line for ``text`` (without its newline)."""
    tag = b"P" if partial else b"F"
    return b" ".join((cri_time().encode(), stream.encode(), tag, text)) + b"\n"


@dataclass(frozen=True)
class Entry:
    """One line of output: when (None for a raw line), which stream, the text."""

    time: str | None
    stream: str
    text: str

    def render(self, timestamps: bool = False) -> str:
        """The line as ``kubectl logs`` prints it (``--timestamps``: with its time first)."""
        if timestamps and self.time:
            return f"{self.time} {self.text}\n"
        return self.text + "\n"


class EntryReader:
    """Decodes a log file's bytes into entries, joining ``P`` parts; feed it as it grows."""

    def __init__(self) -> None:
        self._pending = b""  # an incomplete last line
        self._parts: list[bytes] = []

    def feed(self, data: bytes) -> list[Entry]:
        """Entries completed by ``data``."""
        lines = (self._pending + data).split(b"\n")
        self._pending = lines.pop()
        entries: list[Entry] = []
        for line in lines:
            match = _CRI.match(line)
            if match is None:  # an earlier version's raw line
                entries.append(Entry(None, "stdout", line.decode("utf-8", "replace")))
                continue
            self._parts.append(match.group("text") or b"")
            if match.group("tag") == b"F":
                text = b"".join(self._parts).decode("utf-8", "replace")
                self._parts.clear()
                stamp = match.group("time").decode()
                entries.append(Entry(stamp, match.group("stream").decode(), text))
        return entries

    def flush(self) -> list[Entry]:
        """What is left at the end of a file: an unterminated line and unfinished parts."""
        tail = self._pending
        self._pending = b""
        entries = self.feed(tail + b"\n") if tail else []
        if self._parts:
            text = b"".join(self._parts).decode("utf-8", "replace")
            self._parts.clear()
            entries.append(Entry(None, "stdout", text))
        return entries


def stream(
    path: Path,
    *,
    tail: int | None = None,
    running: Callable[[], bool] | None = None,
    stopped: Callable[[], bool] = lambda: False,
    interval: float = 0.2,
) -> Iterator[Entry]:
    """The entries of a file (the last ``tail`` if given); with ``running``, then the entries
    written later, until ``running()`` is false (what is left is read first) or ``stopped()``
    is true. While following, nothing is yielded while nothing comes."""
    reader = EntryReader()
    entries: list[Entry] = []
    offset = 0
    with contextlib.suppress(FileNotFoundError), path.open("rb") as handle:
        while chunk := handle.read(1 << 16):
            offset += len(chunk)
            entries.extend(reader.feed(chunk))
            if tail is not None and len(entries) > 4 * tail + 1024:
                del entries[: len(entries) - tail]
    if tail is not None:
        entries = entries[-tail:] if tail > 0 else []
    yield from entries
    if running is None:
        yield from reader.flush()
        return
    while True:
        alive = running()
        data = b""
        with contextlib.suppress(FileNotFoundError), path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
        offset += len(data)
        yield from reader.feed(data)
        if not alive:
            yield from reader.flush()
            return
        if stopped():
            return
        if not data:
            time.sleep(interval)


def read_text(path: Path) -> str:
    """A log file's text as ``kubectl logs`` prints it."""
    return "".join(entry.render() for entry in stream(path))
