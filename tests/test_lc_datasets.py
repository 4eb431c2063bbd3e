"""The LC dataset monitor on real files: appends, csv headers, missing files, truncation."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from lc.datasets import (
    CursorStore,
    DatasetMonitor,
    DatasetObservation,
    LineCounter,
    RoundSplitter,
    count_samples,
    split_share,
)


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


# --- the staged jobs' split into round files ---------------------------------------------------


def splitter(tmp_path: Path, fmt: str = "txt", prob: float = 0.8) -> RoundSplitter:
    index = tmp_path / f"index.{fmt}"
    index.touch()
    store = CursorStore(tmp_path / "cursors")
    return RoundSplitter("default/il", index, fmt, prob, tmp_path / "out", store)


def samples(start: int, count: int) -> str:
    return "".join(f"samples/{i}.txt {i % 10}\n" for i in range(start, start + count))


@pytest.mark.parametrize(
    ("seen", "train", "new", "share"),
    [(0, 0, 1, 0), (1, 0, 1, 1), (0, 0, 300, 240), (300, 240, 300, 240), (4, 3, 1, 1)],
)
def test_split_share_is_cumulative(seen: int, train: int, new: int, share: int) -> None:
    assert split_share(0.8, seen, train, new) == share


def test_a_batch_splits_like_upstream_first_train_then_eval(tmp_path: Path) -> None:
    split = splitter(tmp_path)
    append(split.index, samples(0, 300))
    assert split.poll() == 240
    assert split.cursor.pending_train[0] == "samples/0.txt 0"
    assert split.cursor.pending_eval[0] == "samples/240.txt 0"


def test_a_trickle_of_one_sample_at_a_time_reaches_training(tmp_path: Path) -> None:
    split = splitter(tmp_path)
    for i in range(250):
        append(split.index, samples(i, 1))
        split.poll()
    # upstream floors every increment: int(0.8 * 1) == 0, all 250 would go to eval
    assert split.pending_train == 200 and len(split.cursor.pending_eval) == 50


def test_an_unfinished_last_line_waits_for_its_newline(tmp_path: Path) -> None:
    split = splitter(tmp_path, prob=1.0)
    append(split.index, "a.txt 1\nb.t")
    assert split.poll() == 1
    append(split.index, "xt 2\n")
    assert split.poll() == 2 and split.cursor.pending_train == ["a.txt 1", "b.txt 2"]


def test_the_offset_survives_a_restart_and_nothing_is_read_twice(tmp_path: Path) -> None:
    split = splitter(tmp_path)
    append(split.index, samples(0, 100))
    split.poll()
    again = RoundSplitter("default/il", split.index, "txt", 0.8, tmp_path / "out", split.store)
    assert again.pending_train == 80 and again.cursor.offset == split.cursor.offset
    append(split.index, samples(100, 100))
    assert again.poll() == 160


def test_cut_writes_round_files_and_keeps_five_eval_batches(tmp_path: Path) -> None:
    split = splitter(tmp_path)
    for r in range(1, 8):
        append(split.index, samples(r * 1000, 300))
        split.poll()
        files = split.cut(r)
        assert files.train == 240 and files.eval == 60 * min(r, 5)
        train = Path(files.train_url).read_text().splitlines()
        assert len(train) == 240 and train[0] == f"{tmp_path}/samples/{r * 1000}.txt 0"
        assert len(Path(files.eval_url).read_text().splitlines()) == files.eval
    assert files.train_url == str(tmp_path / "out/data/train/7/data.txt")
    assert split.pending_train == 0


def test_cutting_the_same_round_again_uses_no_sample_twice(tmp_path: Path) -> None:
    split = splitter(tmp_path)
    append(split.index, samples(0, 300))
    split.poll()
    first = split.cut(1)
    restarted = RoundSplitter("default/il", split.index, "txt", 0.8, tmp_path / "out", split.store)
    assert restarted.cut(1) == first  # re-sent after a restart, not re-cut
    assert restarted.cut(3).round == 3  # the GM decides the round number
    with pytest.raises(ValueError, match="last round cut is 3"):
        restarted.cut(2)


def test_csv_keeps_its_header_atop_every_round_file(tmp_path: Path) -> None:
    split = splitter(tmp_path, "csv", prob=0.5)
    append(split.index, "task,x,label\n" + "".join(f"a,{i},1\n" for i in range(4)))
    assert split.poll() == 2
    files = split.cut(1)
    assert Path(files.train_url).read_text() == "task,x,label\na,0,1\na,1,1\n"
    assert Path(files.eval_url).read_text().splitlines()[0] == "task,x,label"


def test_a_rewritten_index_adds_only_what_is_beyond_the_samples_read(tmp_path: Path) -> None:
    split = splitter(tmp_path, prob=1.0)
    append(split.index, samples(0, 3))
    split.poll()
    replacement = tmp_path / "new.txt"
    replacement.write_text(samples(0, 5))
    os.replace(replacement, split.index)  # a new inode, as an editor's save
    assert split.poll() == 5 and split.cursor.pending_train[-1] == "samples/4.txt 4"
