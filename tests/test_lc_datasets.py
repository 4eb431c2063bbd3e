"""The LC dataset monitor on real files: appends, csv headers, missing files, truncation."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from lc.datasets import DatasetMonitor, DatasetObservation, LineCounter, count_samples


class Sink:
    """Collects observations."""

    def __init__(self) -> None:
        self.seen: list[DatasetObservation] = []
        self.changed = threading.Event()

    def __call__(self, observation: DatasetObservation) -> None:
        self.seen.append(observation)
        self.changed.set()

    def counts(self) -> list[int | None]:
        return [o.number_of_samples for o in self.seen]


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
def monitor(sink: Sink) -> DatasetMonitor:
    return DatasetMonitor(sink, period=60)


def append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)


def test_txt_counts_appended_lines_and_reports_only_changes(
    tmp_path: Path, monitor: DatasetMonitor, sink: Sink
) -> None:
    index = tmp_path / "train.txt"
    index.write_text("a.jpg 1\nb.jpg 0\n")
    monitor.watch("default/ds", str(index), "txt")
    monitor.poll()
    assert sink.counts() == [2]
    assert monitor.poll() == []  # unchanged: nothing reported
    append(index, "c.jpg 1\n\n   \nd.jpg 0\n")
    monitor.poll()
    assert sink.counts() == [2, 4]
    assert sink.seen[-1].model_dump(by_alias=True)["numberOfSamples"] == 4
    assert monitor.observation("default/ds") == sink.seen[-1]


def test_line_without_newline_counts_once_when_completed(
    tmp_path: Path, monitor: DatasetMonitor, sink: Sink
) -> None:
    index = tmp_path / "train.txt"
    index.write_text("a\nb")
    monitor.watch("ds", str(index), "txt")
    monitor.poll()
    append(index, "-still-b\n")
    monitor.poll()
    append(index, "c")
    monitor.poll()
    assert sink.counts() == [2, 3]


def test_csv_excludes_the_header(tmp_path: Path, monitor: DatasetMonitor, sink: Sink) -> None:
    index = tmp_path / "data.csv"
    index.write_text("x,y\n")
    monitor.watch("csv", f"file://{index}", "csv")
    monitor.poll()
    append(index, "1,2\n3,4\n")
    monitor.poll()
    assert sink.counts() == [0, 2]
    assert [o.format for o in sink.seen] == ["csv", "csv"]


def test_missing_file_is_reported_once_then_picked_up(
    tmp_path: Path, monitor: DatasetMonitor, sink: Sink
) -> None:
    index = tmp_path / "later.txt"
    monitor.watch("ds", str(index), "txt")
    monitor.poll()
    monitor.poll()
    (missing,) = sink.seen
    assert missing.reason == "FileNotFound" and missing.number_of_samples is None
    assert str(index) in (missing.message or "")
    index.write_text("one\n")
    monitor.poll()
    assert sink.counts() == [None, 1] and sink.seen[-1].reason is None


def test_truncation_and_rotation_are_recounted(
    tmp_path: Path, monitor: DatasetMonitor, sink: Sink
) -> None:
    index = tmp_path / "train.txt"
    index.write_text("1\n2\n3\n4\n")
    monitor.watch("ds", str(index), "txt")
    monitor.poll()
    with open(index, "w", encoding="utf-8") as fh:  # truncate in place
        fh.write("5\n")
    monitor.poll()
    rotated = tmp_path / "train.txt.1"
    os.rename(index, rotated)
    index.write_text("6\n7\n")  # a new file under the old name, bigger than the last count
    monitor.poll()
    index.unlink()
    monitor.poll()
    assert sink.counts() == [4, 1, 2, None]
    assert sink.seen[-1].reason == "FileNotFound"


def test_same_size_rewrite_is_recounted(tmp_path: Path) -> None:
    index = tmp_path / "train.txt"
    index.write_text("a\nb\n")
    counter = LineCounter(index)
    assert counter.count() == 2
    index.write_text("\n\nab")
    stat = index.stat()
    os.utime(index, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert counter.count() == 1


@pytest.mark.parametrize(
    ("url", "fmt", "reason"),
    [
        ("s3://bucket/index.txt", "txt", "UnsupportedURL"),
        ("/tmp/x.json", "json", "UnsupportedFormat"),
    ],
)
def test_unsupported_datasets_are_a_condition(
    monitor: DatasetMonitor, sink: Sink, url: str, fmt: str, reason: str
) -> None:
    monitor.watch("ds", url, fmt)
    monitor.poll()
    (seen,) = sink.seen
    assert seen.reason == reason and seen.number_of_samples is None


def test_unwatch_and_rewatch(tmp_path: Path, monitor: DatasetMonitor, sink: Sink) -> None:
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("1\n")
    second.write_text("1\n2\n3\n")
    monitor.watch("ds", str(first), "txt")
    monitor.poll()
    monitor.watch("ds", str(second), "txt")  # re-pointed
    monitor.poll()
    assert monitor.unwatch("ds") and not monitor.unwatch("ds")
    monitor.poll()
    assert sink.counts() == [1, 3]


def test_background_thread_follows_the_file(tmp_path: Path, sink: Sink) -> None:
    index = tmp_path / "train.txt"
    index.write_text("1\n")
    monitor = DatasetMonitor(sink, period=0.05)
    monitor.watch("ds", str(index), "txt")
    monitor.start()
    try:
        assert sink.changed.wait(30)
        sink.changed.clear()
        append(index, "2\n")
        deadline = time.monotonic() + 30
        while sink.counts()[-1] != 2 and time.monotonic() < deadline:
            sink.changed.wait(0.1)
    finally:
        monitor.close()
    assert sink.counts() == [1, 2]


def test_callback_errors_do_not_stop_the_monitor(tmp_path: Path) -> None:
    calls: list[str] = []

    def broken(observation: DatasetObservation) -> None:
        calls.append(observation.key)
        raise RuntimeError("upstream down")

    monitor = DatasetMonitor(broken, period=1)
    for key in ("a", "b"):
        path = tmp_path / f"{key}.txt"
        path.write_text("x\n")
        monitor.watch(key, str(path), "txt")
    assert len(monitor.poll()) == 2
    assert sorted(calls) == ["a", "b"]


def test_count_samples_and_bad_period() -> None:
    assert [count_samples(n, "csv") for n in (0, 1, 2)] == [0, 0, 1]
    assert [count_samples(n, "txt") for n in (0, 1, 2)] == [0, 1, 2]
    with pytest.raises(ValueError, match="period must be positive"):
        DatasetMonitor(lambda o: None, period=0)
