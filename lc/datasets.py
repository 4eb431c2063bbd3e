"""Datasets on the node: the monitor counting each index file's samples, and the train/eval
split of a staged job's new samples into round files (:class:`RoundSplitter`).

A ``txt`` index has one sample per non-blank line; a ``csv`` index has a header line and one
sample per non-blank row (rows are counted by line, so quoted fields must not span lines).
Files are read incrementally; a truncated, replaced or rotated file is counted afresh.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
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


# --- New samples of a staged job: the train/eval split and the round files ---------------------

#: Eval batches (one per round) that make up a round's eval file, as upstream's 5 versions.
EVAL_CAPACITY = 5


class SplitCursor(BaseModel):
    """How far a staged job has read its dataset index, and the samples not yet in a round.

    Persisted after every change, so an LC restart neither loses samples nor cuts a round twice.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    offset: int = 0
    ident: tuple[int, int] | None = None  # (device, inode) of the index file read
    header: str | None = None  # csv: the header line, written atop every round file
    seen: int = 0  # samples read since the job started
    train_total: int = 0  # of which went to training
    pending_train: list[str] = Field(default_factory=list)
    pending_eval: list[str] = Field(default_factory=list)
    eval_batches: list[list[str]] = Field(default_factory=list)
    last_round: int = 0  # the last round whose files were written
    last_train: int = 0  # samples in that round's train file
    last_eval: int = 0  # and in its eval file


def split_share(train_prob: float, seen: int, train_total: int, new: int) -> int:
    """How many of ``new`` samples go to training so that, cumulatively, the train share is
    ``floor(train_prob * samples seen)``.

    Upstream floors each increment (``int(0.8 * 1) == 0``), so samples arriving one at a time
    all go to evaluation and training never triggers; the cumulative rule sends 4 of every 5.
    """
    target = math.floor(train_prob * (seen + new) + 1e-9)
    return min(max(target - train_total, 0), new)


def read_appended(path: Path, cursor: SplitCursor) -> tuple[list[str], bool]:
    """The complete non-blank lines appended to ``path`` since ``cursor`` (which it advances),
    and whether they start at the top of the file (a new, replaced or truncated index).

    A last line without its newline is left for the next read (a writer may be mid-line).
    """
    with open(path, "rb") as fh:
        st = os.fstat(fh.fileno())
        ident = (st.st_dev, st.st_ino)
        if ident != cursor.ident or st.st_size < cursor.offset:
            cursor.offset, cursor.ident = 0, ident
        from_start = cursor.offset == 0
        fh.seek(cursor.offset)
        data = fh.read()
    end = data.rfind(b"\n") + 1
    cursor.offset += end
    lines = [line.strip() for line in data[:end].decode("utf-8", "replace").split("\n")]
    return [line for line in lines if line], from_start


class CursorStore:
    """Split cursors as JSON files in a directory, replaced atomically."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        return self.directory / (key.replace("/", "__") + ".json")

    def load(self, key: str) -> SplitCursor:
        """The cursor of ``key`` (``namespace/job``); a fresh one if none was saved."""
        try:
            return SplitCursor.model_validate_json(self._path(key).read_bytes())
        except FileNotFoundError:
            return SplitCursor()

    def save(self, key: str, cursor: SplitCursor) -> None:
        """Persist ``cursor`` (write to a temporary file, then rename over the old one)."""
        write_atomically(self._path(key), cursor.model_dump_json(by_alias=True).encode())

    def delete(self, key: str) -> None:
        """Forget a job's cursor."""
        self._path(key).unlink(missing_ok=True)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` so a reader sees the old or the new file, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@dataclass
class RoundFiles:
    """The files of one round, as written."""

    round: int
    train_url: str
    eval_url: str
    train: int
    eval: int


class RoundSplitter:
    """The dataset side of one staged job: new index lines, the cumulative split, round files.

    ``poll`` reads what was appended and splits it; ``cut`` writes round ``r``'s files under
    ``<outputDir>/data/{train,eval}/<r>/data.<format>`` (upstream's layout), with relative
    sample paths of a txt index made absolute against the index's directory. The train file holds
    the round's new train samples; the eval file the eval samples of the last
    :data:`EVAL_CAPACITY` rounds, this one included.
    """

    def __init__(
        self,
        key: str,
        index: Path,
        fmt: str,
        train_prob: float,
        output_dir: Path,
        store: CursorStore,
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
        self.key, self.index, self.format = key, index, fmt
        self.train_prob, self.output_dir, self.store = train_prob, output_dir, store
        self.cursor = store.load(key)

    @property
    def pending_train(self) -> int:
        """Train samples not yet in a round: the ``num_of_samples`` of the train trigger."""
        return len(self.cursor.pending_train)

    def poll(self) -> int:
        """Read and split the lines appended since the last poll; the pending train count.

        Raises OSError when the index cannot be read (the cursor is unchanged).
        """
        cursor = self.cursor.model_copy(deep=True)
        lines, from_start = read_appended(self.index, cursor)
        if from_start and self.format == "csv" and lines:
            cursor.header, lines = lines[0], lines[1:]
        if from_start and cursor.seen:
            # The index was replaced (an editor's save) or truncated: what it holds beyond the
            # samples already read is new.
            log.warning(
                "dataset index rewritten; skipping the samples read before", extra={"job": self.key}
            )
            lines = lines[cursor.seen :]
        if not lines and cursor == self.cursor:
            return self.pending_train
        share = split_share(self.train_prob, cursor.seen, cursor.train_total, len(lines))
        cursor.pending_train += lines[:share]
        cursor.pending_eval += lines[share:]
        cursor.seen += len(lines)
        cursor.train_total += share
        self.store.save(self.key, cursor)
        self.cursor = cursor
        return self.pending_train

    def _located(self, line: str) -> str:
        """A txt line whose relative sample path is made absolute (the round file lives
        elsewhere than the index it came from); csv rows as they are."""
        if self.format != "txt":
            return line
        sample, sep, rest = line.partition(" ")
        if Path(sample).is_absolute():
            return line
        return f"{self.index.parent / sample}{sep}{rest}"

    def files(self, round_: int) -> RoundFiles:
        """The paths (and sizes, once cut) of round ``round_``'s files."""
        name = f"data.{self.format}"
        train = self.output_dir / "data" / "train" / str(round_) / name
        evaluation = self.output_dir / "data" / "eval" / str(round_) / name
        last = round_ == self.cursor.last_round
        return RoundFiles(
            round=round_,
            train_url=str(train),
            eval_url=str(evaluation),
            train=self.cursor.last_train if last else 0,
            eval=self.cursor.last_eval if last else 0,
        )

    def cut(self, round_: int) -> RoundFiles:
        """Write round ``round_``'s files from the pending samples and start the next batch.

        Cutting the round already cut returns its files again (an LC restarted after cutting
        but before reporting it re-sends; the samples are not used twice); an older round is
        refused; a later one than the next is allowed (the GM is the judge of the round number).
        """
        if round_ == self.cursor.last_round:
            return self.files(round_)
        if round_ < self.cursor.last_round:
            raise ValueError(
                f"cannot cut round {round_}: the last round cut is {self.cursor.last_round}"
            )
        cursor = self.cursor.model_copy(deep=True)
        cursor.eval_batches = [*cursor.eval_batches, cursor.pending_eval][-EVAL_CAPACITY:]
        eval_lines = [line for batch in cursor.eval_batches for line in batch]
        train_lines = cursor.pending_train
        cursor.last_round, cursor.last_train, cursor.last_eval = (
            round_,
            len(train_lines),
            len(eval_lines),
        )
        cursor.pending_train, cursor.pending_eval = [], []
        files = RoundFiles(round_, "", "", len(train_lines), len(eval_lines))
        self.cursor = cursor
        paths = self.files(round_)
        header = [cursor.header] if self.format == "csv" and cursor.header else []
        for path, body in ((paths.train_url, train_lines), (paths.eval_url, eval_lines)):
            text = "".join(f"{self._located(line)}\n" for line in header + body)
            write_atomically(Path(path), text.encode())
        self.store.save(self.key, cursor)
        files.train_url, files.eval_url = paths.train_url, paths.eval_url
        return files
