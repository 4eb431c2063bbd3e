"""Dataset monitor: counts the samples of each dataset index file on the node.

A ``txt`` index has one sample per non-blank line; a ``csv`` index has a header line and one
sample per non-blank row (rows are counted by line, so quoted fields must not span lines).
Files are read incrementally; a truncated, replaced or rotated file is counted afresh.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

log = logging.getLogger(__name__)

DatasetFormat = Literal["txt", "csv"]
FORMATS: tuple[str, ...] = ("txt", "csv")
_CHUNK = 1 << 20


class DatasetObservation(BaseModel):
    """What the monitor saw of one dataset; ``number_of_samples`` is None with a condition."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    key: str
    url: str
    format: str
    number_of_samples: int | None = None
    reason: str | None = None  # None when counted; FileNotFound, UnsupportedURL, ReadError...
    message: str | None = None


ObservationCallback = Callable[[DatasetObservation], None]


@dataclass
class LineCounter:
    """Counts non-blank lines of a growing file, reading only what was appended."""

    path: Path
    _ident: tuple[int, int] | None = None  # (device, inode)
    _offset: int = 0
    _mtime_ns: int = 0
    _complete: int = 0  # non-blank lines that ended with a newline
    _pending: bool = False  # a non-blank last line without its newline yet

    def count(self) -> int:
        """Non-blank lines in the file now. Raises OSError (FileNotFoundError...) on failure."""
        with open(self.path, "rb") as fh:
            st = os.fstat(fh.fileno())
            ident = (st.st_dev, st.st_ino)
            rewritten = st.st_size == self._offset and st.st_mtime_ns != self._mtime_ns
            if ident != self._ident or st.st_size < self._offset or rewritten:
                self._reset(ident)
            fh.seek(self._offset)
            while chunk := fh.read(_CHUNK):
                self._feed(chunk)
            self._offset = fh.tell()
            self._mtime_ns = st.st_mtime_ns
        return self._complete + (1 if self._pending else 0)

    def _reset(self, ident: tuple[int, int]) -> None:
        self._ident = ident
        self._offset = 0
        self._complete = 0
        self._pending = False

    def _feed(self, chunk: bytes) -> None:
        parts = chunk.split(b"\n")
        for part in parts[:-1]:  # each ends a line
            if self._pending or part.strip():
                self._complete += 1
            self._pending = False
        if parts[-1].strip():
            self._pending = True


def count_samples(lines: int, fmt: str) -> int:
    """Samples from the number of non-blank lines: all for txt, all but the header for csv."""
    return max(lines - 1, 0) if fmt == "csv" else lines


def index_path(url: str) -> Path | None:
    """The local path of a dataset index URL (plain path or ``file://``), else None."""
    if url.startswith("file://"):
        return Path(url[len("file://") :])
    if "://" in url:
        return None
    return Path(url)


@dataclass
class _Watch:
    key: str
    url: str
    format: str
    counter: LineCounter | None
    last: DatasetObservation | None = None


class DatasetMonitor:
    """Watches dataset index files; ``on_change`` gets an observation only when it changes.

    Call :meth:`poll` for one pass, or :meth:`start` to poll every ``period`` seconds in a thread.
    """

    def __init__(self, on_change: ObservationCallback, *, period: float = 10.0) -> None:
        if period <= 0:
            raise ValueError(f"period must be positive, not {period}")
        self._on_change = on_change
        self._period = period
        self._watches: dict[str, _Watch] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, key: str, url: str, fmt: str) -> None:
        """Watch (or re-point) the dataset ``key`` (e.g. ``namespace/name``); idempotent."""
        with self._lock:
            current = self._watches.get(key)
            if current is not None and current.url == url and current.format == fmt:
                return
            path = index_path(url)
            self._watches[key] = _Watch(
                key=key, url=url, format=fmt, counter=LineCounter(path) if path else None
            )

    def unwatch(self, key: str) -> bool:
        """Stop watching a dataset; False if it was not watched."""
        with self._lock:
            return self._watches.pop(key, None) is not None

    def observation(self, key: str) -> DatasetObservation | None:
        """The last observation of a dataset, if it has been polled."""
        with self._lock:
            watch = self._watches.get(key)
            return watch.last if watch is not None else None

    def poll(self) -> list[DatasetObservation]:
        """Count every watched dataset once; report and return the observations that changed."""
        with self._lock:
            watches = list(self._watches.values())
        changed = []
        for watch in watches:
            seen = self._observe(watch)
            if seen != watch.last:
                watch.last = seen
                changed.append(seen)
        for seen in changed:
            if seen.reason is not None:
                log.warning(
                    "dataset not countable",
                    extra={"dataset": seen.key, "reason": seen.reason, "detail": seen.message},
                )
            try:
                self._on_change(seen)
            except Exception:
                log.exception("dataset callback failed", extra={"dataset": seen.key})
        return changed

    def start(self) -> None:
        """Poll in a background thread until :meth:`close`."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="lc-datasets", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the background thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while True:
            try:
                self.poll()
            except Exception:
                log.exception("dataset poll failed")
            if self._stop.wait(self._period):
                return

    @staticmethod
    def _observe(watch: _Watch) -> DatasetObservation:
        base = {"key": watch.key, "url": watch.url, "format": watch.format}
        if watch.format not in FORMATS:
            return DatasetObservation(
                **base,
                reason="UnsupportedFormat",
                message=f"format {watch.format!r} is not one of {', '.join(FORMATS)}",
            )
        if watch.counter is None:
            return DatasetObservation(
                **base,
                reason="UnsupportedURL",
                message=f"url {watch.url!r} is not a local path",
            )
        try:
            lines = watch.counter.count()
        except FileNotFoundError:
            return DatasetObservation(
                **base,
                reason="FileNotFound",
                message=f"dataset index {watch.counter.path} does not exist",
            )
        except OSError as exc:
            return DatasetObservation(
                **base,
                reason="ReadError",
                message=f"cannot read {watch.counter.path}: {exc.strerror or exc}",
            )
        return DatasetObservation(**base, number_of_samples=count_samples(lines, watch.format))
