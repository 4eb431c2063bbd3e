"""Worker logs on a node: the kubelet's file layout and CRI lines promtail reads, restarts kept,
labels for promtail's file discovery, and data directories of the earlier layout taken over."""

from __future__ import annotations

import glob
import json
import re
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
import redis

from lc import podlogs
from lc.runtime import ProcessRuntime, WorkerPhase
from tests.services import wait_for

NODE = "edge1"
# The CRI line promtail's cri stage reads: time, stream (stdout|stderr), flags (F|P), content,
# single spaces between them.
CRI = re.compile(r"(?s)^(?P<time>\S+) (?P<stream>stdout|stderr) (?P<flags>[FP]) (?P<content>.*)$")
# The link name promtail's older Kubernetes configs parse (/var/log/containers/*.log).
CONTAINER_LINK = re.compile(
    r"^(?P<pod>[^_]+)_(?P<namespace>[^_]+)_(?P<container>.+)-(?P<id>[0-9a-f]{64})\.log$"
)


def promtail_path(root: Path, uid: str, container: str) -> list[Path]:
    """Files promtail's kubernetes-pods job tails for a pod: its relabelling sets ``__path__``
    to ``/var/log/pods/*$1/*.log`` from ``__meta_kubernetes_pod_uid`` and the container name
    (joined by ``/``)."""
    return sorted(root.glob(f"pods/*{uid}/{container}/*.log"))


@pytest.fixture
def prefix() -> str:
    """A Redis key prefix of this test's own."""
    return f"test-logs-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def make_runtime(
    redis_client: redis.Redis, tmp_path: Path, prefix: str
) -> Iterator[Callable[..., ProcessRuntime]]:
    made: list[ProcessRuntime] = []

    def make() -> ProcessRuntime:
        runtime = ProcessRuntime(
            redis_client,
            tmp_path / "lc",
            node=NODE,
            poll_interval=0.05,
            backoff_base=0.05,
            backoff_max=0.2,
            grace_period=5.0,
            key_prefix=prefix,
        )
        runtime.start()
        made.append(runtime)
        return runtime

    yield make
    for runtime in made:
        runtime.close()
    ProcessRuntime(redis_client, tmp_path / "lc", node=NODE, key_prefix=prefix).remove_all()


def worker(name: str, script: Path, restart: str = "OnFailure") -> dict[str, object]:
    return {
        "name": name,
        "namespace": "team-a",
        "owner": {
            "apiVersion": "sedna.io/v1alpha1",
            "kind": "IncrementalLearningJob",
            "name": "job1",
        },
        "template": {
            "spec": {
                "restartPolicy": restart,
                "containers": [{"name": "train", "image": "x", "args": [str(script)]}],
            }
        },
    }


def fails_once(directory: Path, body: str) -> Path:
    """A worker script that runs ``body`` (``first`` says whether this is the first run), and
    exits 1 the first time and 0 after that."""
    marker = directory / "ran-once"
    script = directory / "fails_once.py"
    script.write_text(
        "import os, sys\n"
        f"first = not os.path.exists({str(marker)!r})\n"
        f"open({str(marker)!r}, 'a').close()\n"
        + textwrap.dedent(body)
        + "sys.exit(1 if first else 0)\n"
    )
    return script


def test_runs_are_kept_in_the_kubelet_layout_as_cri_lines(make_runtime, tmp_path: Path) -> None:
    runtime = make_runtime()
    script = fails_once(
        tmp_path,
        """
        print("run", "first" if first else "second")
        print("to stderr", file=sys.stderr)
        print("x" * 20000)
        sys.stdout.write("no newline at the end")
        """,
    )
    runtime.ensure(worker("job1-train-0", script))
    wait_for(
        lambda: (
            (s := runtime.status("job1-train-0", "team-a")) and s.phase == WorkerPhase.SUCCEEDED
        ),
        30,
        "the worker to fail once and then succeed",
    )
    root = tmp_path / "lc" / "var" / "log"
    pod_dirs = list((root / "pods").iterdir())
    assert len(pod_dirs) == 1
    namespace, pod, uid = pod_dirs[0].name.split("_")
    assert (namespace, pod) == ("team-a", "job1-train-0")
    assert uuid.UUID(uid)
    files = promtail_path(root, uid, "train")
    assert [f.name for f in files] == ["0.log", "1.log"]  # the restart count names the file
    assert runtime.log_path("job1-train-0", "team-a") == files[1]
    assert runtime.log_path("job1-train-0", "team-a", previous=True) == files[0]
    assert podlogs.parse_path(files[1]) == {
        "namespace": "team-a", "pod": "job1-train-0", "uid": uid, "container": "train",
        "restart": "1",
    }  # fmt: skip

    # stdout and stderr are separate pipes, so only each stream's own order is kept.
    first_stdout = [e.text for e in podlogs.stream(files[0]) if e.stream == "stdout"]
    assert first_stdout[0] == "run first"
    assert "run second" not in podlogs.read_text(files[0])
    assert "run second\n" in podlogs.read_text(files[1])
    lines = files[1].read_bytes().decode().splitlines()
    parsed = [CRI.match(line) for line in lines]
    assert all(parsed), lines
    for match in parsed:
        datetime.fromisoformat(match["time"].replace("Z", "+00:00"))
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", match["time"])
    streams = {m["content"]: m["stream"] for m in parsed}
    assert streams["to stderr"] == "stderr" and streams["run second"] == "stdout"
    # A line longer than 16 KiB is split into partial entries and read back whole.
    flags = [m["flags"] for m in parsed if set(m["content"]) == {"x"}]
    assert flags == ["P", "F"]
    entries = [e.text for e in podlogs.stream(files[1])]
    assert "x" * 20000 in entries and entries[-1] == "no newline at the end"

    links = sorted((root / "containers").iterdir())
    assert len(links) == 2
    for link in links:
        match = CONTAINER_LINK.match(link.name)
        assert match is not None, link.name
        assert (match["pod"], match["namespace"], match["container"]) == (pod, namespace, "train")
        assert link.is_symlink() and not Path(link.readlink()).is_absolute()
        assert link.resolve() in [f.resolve() for f in files]

    targets = json.loads((root / "targets" / "team-a_job1-train-0.json").read_text())
    labels = targets[0]["labels"]
    assert {k: v for k, v in labels.items() if k != "__path__"} == {
        "namespace": "team-a", "pod": "job1-train-0", "container": "train",
        "worker": "job1-train-0", "job": "job1", "kind": "IncrementalLearningJob", "node": NODE,
    }  # fmt: skip
    assert sorted(Path(p) for p in glob.glob(labels["__path__"])) == files


def _start_ticks(pid: int) -> int:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return int(raw[raw.rindex(")") + 2 :].split()[19])


def test_a_worker_of_the_earlier_layout_is_adopted_and_its_log_moved(
    make_runtime, redis_client: redis.Redis, tmp_path: Path, prefix: str
) -> None:
    """An LC of the earlier version started this worker (old launcher form, raw output into
    ``logs/<ns>/<pod>.log``, a record without ``uid``); the new LC adopts it and moves the
    file, which the worker keeps writing."""
    go_on = tmp_path / "go-on"
    script = tmp_path / "old.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os, time
            print("before the upgrade", flush=True)
            while not os.path.exists({str(go_on)!r}):
                time.sleep(0.05)
            print("after the upgrade", flush=True)
            """
        )
    )
    data_dir = tmp_path / "lc"
    legacy = data_dir / "logs" / "team-a" / "old-0.log"
    legacy.parent.mkdir(parents=True)
    exit_file = data_dir / "run" / "team-a" / "old-0.exit"
    exit_file.parent.mkdir(parents=True)
    launcher = Path(podlogs.__file__).with_name("_launcher.py")
    with legacy.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-I",
                str(launcher),
                str(exit_file),
                "--",
                sys.executable,
                str(script),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_for(lambda: "before" in legacy.read_text(), 30, "the old worker to write its log")
    spec = worker("old-0", script, restart="Never")
    record = {  # what the earlier version kept in Redis: no uid
        "spec": spec, "env": {}, "spec_hash": "earlier", "phase": "Running",
        "restarts": 0, "pid": proc.pid, "start_ticks": _start_ticks(proc.pid),
        "started_at": time.time(),
    }  # fmt: skip
    redis_client.hset(f"{prefix}:{NODE}:workers", "team-a/old-0", json.dumps(record))
    runtime = make_runtime()
    status = runtime.status("old-0", "team-a")
    assert status is not None and status.phase == WorkerPhase.RUNNING and status.pid == proc.pid

    moved = runtime.log_path("old-0", "team-a")
    assert moved is not None and podlogs.parse_path(moved)["restart"] == "0"
    assert not legacy.exists()
    go_on.touch()
    wait_for(
        lambda: (s := runtime.status("old-0", "team-a")) and s.phase == WorkerPhase.SUCCEEDED,
        30,
        "the adopted worker to end",
    )
    proc.wait(10)
    assert podlogs.read_text(moved) == "before the upgrade\nafter the upgrade\n"
