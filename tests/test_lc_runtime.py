"""The LC process runtime against a real redis-server: run, restart, stop, adopt workers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from lc import podlogs
from lc.errors import InvalidWorkerSpec
from lc.metrics import LCMetrics
from lc.runtime import ProcessRuntime, WorkerPhase, WorkerStatus

NODE = "edge0"
WAIT = 30.0  # upper bound for anything to happen on a loaded machine; never a measured time


def wait_for(predicate: Callable[[], object], what: str, timeout: float = WAIT) -> None:
    """Poll until ``predicate`` is true; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def process_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] not in ("Z", "X")


# --- a real Redis (tests/services.py will hold the shared fixture; this one is local) ---------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install -y redis-server)")
    directory = tmp_path_factory.mktemp("redis")
    port = _free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(directory),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        wait_for(lambda: _pings(client), "redis-server to accept connections")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    yield conn
    conn.close()


class Recorder:
    """Collects the statuses the runtime reports."""

    def __init__(self) -> None:
        self.events: list[WorkerStatus] = []
        self._lock = threading.Lock()

    def __call__(self, status: WorkerStatus) -> None:
        with self._lock:
            self.events.append(status)

    def of(self, name: str) -> list[WorkerStatus]:
        with self._lock:
            return [e for e in self.events if e.name == name]

    def saw(self, name: str, phase: WorkerPhase) -> WorkerStatus | None:
        return next((e for e in self.of(name) if e.phase == phase), None)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "lc-data"


@pytest.fixture
def make_runtime(
    client: redis.Redis, data_dir: Path
) -> Iterator[Callable[..., tuple[ProcessRuntime, Recorder]]]:
    made: list[ProcessRuntime] = []

    def make(**kwargs: object) -> tuple[ProcessRuntime, Recorder]:
        recorder = Recorder()
        options: dict[str, object] = {
            "poll_interval": 0.05,
            "backoff_base": 0.05,
            "backoff_max": 0.2,
            "grace_period": 5.0,
        }
        options.update(kwargs)
        runtime = ProcessRuntime(client, data_dir, node=NODE, on_status=recorder, **options)
        runtime.start()
        made.append(runtime)
        return runtime, recorder

    yield make
    for runtime in made:
        runtime.close()
    if made:  # stop whatever the last runtime still runs
        last = ProcessRuntime(client, data_dir, node=NODE, grace_period=1.0)
        last.remove_all()


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def spec(
    name: str,
    *,
    args: list[str] | None = None,
    command: list[str] | None = None,
    restart: str = "Never",
    env: dict[str, str] | None = None,
    workdir: Path | None = None,
) -> dict[str, object]:
    container: dict[str, object] = {"name": "worker", "image": "ignored:latest"}
    if args is not None:
        container["args"] = args
    if command is not None:
        container["command"] = command
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    if workdir is not None:
        container["workingDir"] = str(workdir)
    return {
        "name": name,
        "namespace": "default",
        "owner": {"kind": "IncrementalLearningJob", "name": "job1"},
        "template": {"spec": {"restartPolicy": restart, "containers": [container]}},
    }


# --- running and ending -----------------------------------------------------------------------


def test_worker_runs_with_env_and_logs_then_succeeds(make_runtime, tmp_path: Path) -> None:
    runtime, recorder = make_runtime()
    work = tmp_path / "code"
    work.mkdir()
    script(
        work,
        "train.py",
        """
        import os, sys
        print("worker", os.environ["WORKER_NAME"], "lc", os.environ["LC_SERVER"])
        print("epochs", os.environ["epochs"], "cwd", os.getcwd())
        print("namespace", os.environ["NAMESPACE"])
        print("to stderr", file=sys.stderr)
        """,
    )
    runtime.ensure(
        spec("train-a", args=["train.py"], env={"epochs": "3", "WORKER_NAME": "x"}, workdir=work),
        env={"WORKER_NAME": "train-a", "LC_SERVER": "http://127.0.0.1:9100"},
    )
    wait_for(lambda: recorder.saw("train-a", WorkerPhase.SUCCEEDED), "the worker to succeed")
    done = recorder.saw("train-a", WorkerPhase.SUCCEEDED)
    assert done is not None and done.exit_code == 0 and done.restarts == 0
    assert done.owner is not None and done.owner.name == "job1"
    assert recorder.of("train-a")[0].phase == WorkerPhase.RUNNING
    path = runtime.log_path("train-a")
    assert path is not None and podlogs.parse_path(path) is not None  # the kubelet's layout
    log = podlogs.read_text(path)
    # The caller's environment wins over the template's.
    assert "worker train-a lc http://127.0.0.1:9100" in log
    assert f"epochs 3 cwd {work}" in log
    assert "to stderr" in log
    assert "namespace default" in log  # set by the runtime from the spec


def test_nonzero_exit_with_never_fails(make_runtime, tmp_path: Path) -> None:
    runtime, recorder = make_runtime()
    path = script(tmp_path, "fail.py", "import sys\nsys.exit(3)\n")
    runtime.ensure(spec("fail-a", command=["python", str(path)]))
    wait_for(lambda: recorder.saw("fail-a", WorkerPhase.FAILED), "the worker to fail")
    status = runtime.status("fail-a")
    assert status is not None
    assert (status.phase, status.exit_code, status.restarts) == (WorkerPhase.FAILED, 3, 0)
    assert "code 3" in (status.message or "")


def test_missing_command_fails_with_clear_message(make_runtime) -> None:
    runtime, recorder = make_runtime()
    runtime.ensure(spec("nocmd", command=["sedna-no-such-program-xyz"]))
    wait_for(lambda: recorder.saw("nocmd", WorkerPhase.FAILED), "the worker to fail")
    status = runtime.status("nocmd")
    assert status is not None and status.exit_code == 127
    assert "cannot start 'sedna-no-such-program-xyz'" in (status.message or "")


def test_on_failure_restarts_with_increasing_count(make_runtime, tmp_path: Path) -> None:
    runtime, recorder = make_runtime()
    counter = tmp_path / "runs.txt"
    path = script(
        tmp_path,
        "flaky.py",
        f"""
        import sys
        with open({str(counter)!r}, "a") as fh:
            fh.write("run\\n")
        runs = len(open({str(counter)!r}).read().splitlines())
        sys.exit(0 if runs >= 3 else 1)
        """,
    )
    runtime.ensure(spec("flaky", args=[str(path)], restart="OnFailure"))
    wait_for(lambda: recorder.saw("flaky", WorkerPhase.SUCCEEDED), "the third run to succeed")
    assert counter.read_text().splitlines() == ["run", "run", "run"]
    running = [e.restarts for e in recorder.of("flaky") if e.phase == WorkerPhase.RUNNING]
    assert running == [0, 1, 2]
    backoffs = [e for e in recorder.of("flaky") if e.phase == WorkerPhase.PENDING]
    assert [(e.exit_code, e.reason) for e in backoffs] == [(1, "BackOff"), (1, "BackOff")]
    final = runtime.status("flaky")
    assert final is not None and final.restarts == 2 and final.exit_code == 0


def test_always_restarts_after_success_and_counts_in_metrics(make_runtime, tmp_path: Path) -> None:
    metrics = LCMetrics()
    runtime, recorder = make_runtime(metrics=metrics)
    path = script(tmp_path, "quick.py", "print('done')\n")
    runtime.ensure(spec("always", args=[str(path)], restart="Always"))
    wait_for(
        lambda: any(e.restarts >= 2 for e in recorder.of("always")), "two restarts of the worker"
    )
    assert not recorder.saw("always", WorkerPhase.SUCCEEDED)
    restarts = metrics.registry.get_sample_value(
        "sedna_lc_worker_restarts_total", {"namespace": "default", "worker": "always"}
    )
    assert restarts is not None and restarts >= 2
    assert runtime.remove("always")
    gauges = {
        phase: metrics.registry.get_sample_value("sedna_lc_workers", {"phase": phase})
        for phase in ("Pending", "Running", "Succeeded", "Failed")
    }
    assert gauges == {"Pending": 0, "Running": 0, "Succeeded": 0, "Failed": 0}


# --- stopping ---------------------------------------------------------------------------------

_PARENT_WITH_CHILD = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open({pids!r} + ".tmp", "w") as fh:
    fh.write(f"{{child.pid}}\\n")
import os
os.replace({pids!r} + ".tmp", {pids!r})
{extra}
time.sleep(600)
"""


def _read_pids(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def test_remove_stops_worker_and_its_children(make_runtime, tmp_path: Path) -> None:
    runtime, _ = make_runtime(grace_period=10.0)
    pids = tmp_path / "child.pid"
    path = script(tmp_path, "parent.py", _PARENT_WITH_CHILD.format(pids=str(pids), extra=""))
    status = runtime.ensure(spec("stopme", args=[str(path)], restart="Always"))
    wait_for(lambda: _read_pids(pids), "the worker to start its child")
    (child_pid,) = _read_pids(pids)
    assert status.pid is not None and process_alive(status.pid) and process_alive(child_pid)
    assert runtime.remove("stopme") is True
    assert not process_alive(status.pid)
    assert not process_alive(child_pid)
    assert runtime.status("stopme") is None
    assert runtime.remove("stopme") is False  # idempotent


def test_remove_kills_a_worker_that_ignores_sigterm(make_runtime, tmp_path: Path) -> None:
    runtime, _ = make_runtime(grace_period=0.5)
    pids = tmp_path / "child.pid"
    ignore = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)"
    body = _PARENT_WITH_CHILD.format(pids=str(pids), extra=ignore)
    path = script(tmp_path, "stubborn.py", body)
    status = runtime.ensure(spec("stubborn", args=[str(path)]))
    wait_for(lambda: _read_pids(pids), "the worker to start its child")
    (child_pid,) = _read_pids(pids)
    assert runtime.remove("stubborn")
    assert status.pid is not None and not process_alive(status.pid)
    assert not process_alive(child_pid)


def test_ensure_is_idempotent_and_a_changed_spec_restarts(make_runtime, tmp_path: Path) -> None:
    runtime, recorder = make_runtime()
    path = script(tmp_path, "sleep.py", "import time\ntime.sleep(600)\n")
    first = runtime.ensure(spec("svc", args=[str(path)], restart="Always"), env={"A": "1"})
    again = runtime.ensure(spec("svc", args=[str(path)], restart="Always"), env={"A": "1"})
    assert again.pid == first.pid and again.phase == WorkerPhase.RUNNING
    changed = runtime.ensure(spec("svc", args=[str(path)], restart="Always"), env={"A": "2"})
    assert changed.pid != first.pid and changed.restarts == 0
    assert first.pid is not None and not process_alive(first.pid)
    assert changed.pid is not None and process_alive(changed.pid)
    assert [e.pid for e in recorder.of("svc") if e.phase == WorkerPhase.RUNNING] == [
        first.pid,
        changed.pid,
    ]


def test_finished_worker_is_not_rerun_by_ensure(make_runtime, tmp_path: Path) -> None:
    runtime, recorder = make_runtime()
    counter = tmp_path / "count.txt"
    path = script(tmp_path, "once.py", f"open({str(counter)!r}, 'a').write('x\\n')\n")
    runtime.ensure(spec("once", args=[str(path)], restart="OnFailure"))
    wait_for(lambda: recorder.saw("once", WorkerPhase.SUCCEEDED), "the worker to succeed")
    status = runtime.ensure(spec("once", args=[str(path)], restart="OnFailure"))
    assert status.phase == WorkerPhase.SUCCEEDED
    assert counter.read_text() == "x\n"


# --- a restarted LC ---------------------------------------------------------------------------


def test_restarted_runtime_adopts_running_worker(make_runtime, tmp_path: Path) -> None:
    first, _ = make_runtime()
    counter = tmp_path / "starts.txt"
    path = script(
        tmp_path,
        "long.py",
        f"""
        import os, time
        with open({str(counter)!r}, "a") as fh:
            fh.write(f"{{os.getpid()}}\\n")
        time.sleep(600)
        """,
    )
    worker = spec("adoptee", args=[str(path)], restart="Always")
    started = first.ensure(worker, env={"WORKER_NAME": "adoptee"})
    wait_for(lambda: counter.exists() and counter.read_text(), "the worker to start")
    first.close()  # the LC goes away; the worker must not

    second, recorder = make_runtime()
    adopted = second.status("adoptee")
    assert adopted is not None and adopted.phase == WorkerPhase.RUNNING
    assert adopted.pid == started.pid and adopted.restarts == 0
    assert recorder.saw("adoptee", WorkerPhase.RUNNING) is not None  # reported on start
    # The level-triggered caller asks again: nothing new is started.
    again = second.ensure(worker, env={"WORKER_NAME": "adoptee"})
    assert again.pid == started.pid
    second.poll()
    assert second.status("adoptee") == again
    assert started.pid is not None and process_alive(started.pid)
    assert len(counter.read_text().splitlines()) == 1
    worker_pid = int(counter.read_text())
    assert second.remove("adoptee")
    assert not process_alive(started.pid) and not process_alive(worker_pid)
    assert len(counter.read_text().splitlines()) == 1


def test_restarted_runtime_reports_worker_that_exited_meanwhile(
    make_runtime, tmp_path: Path
) -> None:
    first, _ = make_runtime()
    go = tmp_path / "go"
    path = script(
        tmp_path,
        "waiter.py",
        f"""
        import os, sys, time
        while not os.path.exists({str(go)!r}):
            time.sleep(0.02)
        sys.exit(4)
        """,
    )
    started = first.ensure(spec("leaver", args=[str(path)], restart="Never"))
    first.close()
    go.touch()
    assert started.pid is not None
    wait_for(lambda: not process_alive(started.pid), "the worker to exit")

    second, recorder = make_runtime()
    reported = recorder.saw("leaver", WorkerPhase.FAILED)
    assert reported is not None and reported.exit_code == 4 and reported.pid is None
    assert second.status("leaver") == reported


def test_restarted_runtime_restarts_an_always_worker_that_exited(
    make_runtime, tmp_path: Path
) -> None:
    first, _ = make_runtime()
    go = tmp_path / "go"
    counter = tmp_path / "starts.txt"
    path = script(
        tmp_path,
        "cycle.py",
        f"""
        import os, time
        open({str(counter)!r}, "a").write("x\\n")
        while not os.path.exists({str(go)!r}):
            time.sleep(0.02)
        time.sleep(600)
        """,
    )
    started = first.ensure(spec("cycler", args=[str(path)], restart="Always"))
    wait_for(lambda: counter.exists(), "the worker to start")
    first.close()
    assert started.pid is not None
    os.killpg(started.pid, signal.SIGKILL)
    wait_for(lambda: not process_alive(started.pid), "the worker to die")

    second, recorder = make_runtime()
    wait_for(
        lambda: second.status("cycler") and second.status("cycler").restarts == 1,
        "the worker to be restarted",
    )
    wait_for(lambda: len(counter.read_text().splitlines()) == 2, "the second start")
    pending = recorder.saw("cycler", WorkerPhase.PENDING)
    assert pending is not None and pending.exit_code is None  # unknown: the launcher died too
    assert "unknown" in (pending.message or "")


def test_reused_pid_is_neither_adopted_nor_signalled(
    make_runtime, client: redis.Redis, tmp_path: Path
) -> None:
    first, _ = make_runtime()
    path = script(tmp_path, "short.py", "print('hi')\n")
    started = first.ensure(spec("reused", args=[str(path)], restart="Never"))
    assert started.pid is not None
    wait_for(lambda: not process_alive(started.pid), "the worker to exit")
    first.close()
    # Pretend the recorded worker still runs but its pid now belongs to another process (us).
    key = f"sedna:lc:{NODE}:workers"
    record = json.loads(client.hget(key, "default/reused"))
    record.update(phase="Running", pid=os.getpid(), start_ticks=1)
    client.hset(key, "default/reused", json.dumps(record))

    second, _ = make_runtime()
    status = second.status("reused")
    assert status is not None and status.phase == WorkerPhase.SUCCEEDED
    assert second.remove("reused")
    assert process_alive(os.getpid())


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("worker", "field"),
    [
        ({"name": "w", "template": {"spec": {}}}, "template.spec.containers"),
        ({"name": "w", "template": {"spec": {"containers": []}}}, "template.spec.containers"),
        ({"template": {"spec": {"containers": [{"args": ["a.py"]}]}}}, "name"),
        ({"name": "Bad_Name", "template": {"spec": {"containers": [{"args": ["a"]}]}}}, "name"),
        ({"name": "w", "template": {"spec": {"containers": [{"image": "x"}]}}}, "containers[0]"),
        (
            {
                "name": "w",
                "template": {
                    "spec": {"restartPolicy": "Sometimes", "containers": [{"args": ["a"]}]}
                },
            },
            "template.spec.restartPolicy",
        ),
    ],
)
def test_invalid_spec_names_the_field(make_runtime, worker: dict, field: str) -> None:
    runtime, recorder = make_runtime()
    with pytest.raises(InvalidWorkerSpec) as err:
        runtime.ensure(worker)
    assert field in str(err.value)
    assert runtime.statuses() == [] and recorder.events == []


def test_pod_form_is_accepted(make_runtime, tmp_path: Path) -> None:
    runtime, recorder = make_runtime()
    path = script(tmp_path, "ok.py", "print('pod form')\n")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "pod-worker",
            "namespace": "team-a",
            "ownerReferences": [
                {"apiVersion": "sedna.io/v1alpha1", "kind": "Dataset", "name": "d"}
            ],
        },
        "spec": {"restartPolicy": "Never", "containers": [{"image": "x", "args": [str(path)]}]},
    }
    runtime.ensure(pod)
    wait_for(lambda: recorder.saw("pod-worker", WorkerPhase.SUCCEEDED), "the pod to succeed")
    done = recorder.saw("pod-worker", WorkerPhase.SUCCEEDED)
    assert done is not None and done.namespace == "team-a" and done.owner.kind == "Dataset"
    assert "pod form" in podlogs.read_text(runtime.log_path("pod-worker", "team-a"))


def test_python_command_uses_the_current_interpreter(make_runtime, tmp_path: Path) -> None:
    runtime, recorder = make_runtime()
    path = script(tmp_path, "which.py", "import sys\nprint(sys.executable)\n")
    runtime.ensure(spec("which", command=["python3"], args=[str(path)]))
    wait_for(lambda: recorder.saw("which", WorkerPhase.SUCCEEDED), "the worker to succeed")
    assert podlogs.read_text(runtime.log_path("which")).strip() == sys.executable


_LC_PROCESS = """
import sys, redis
from lc.runtime import ProcessRuntime
runtime = ProcessRuntime(redis.Redis.from_url(sys.argv[1]), sys.argv[2], node=sys.argv[3])
runtime.start()
worker = {
    "name": "survivor",
    "template": {"spec": {"restartPolicy": "Never", "containers": [{"args": [sys.argv[4]]}]}},
}
print(runtime.ensure(worker).pid, flush=True)
sys.stdin.read()
"""


def test_workers_survive_a_killed_lc_process(
    make_runtime, redis_url: str, data_dir: Path, tmp_path: Path
) -> None:
    counter = tmp_path / "starts.txt"
    path = script(
        tmp_path,
        "survivor.py",
        f"""
        import time
        open({str(counter)!r}, "a").write("x\\n")
        time.sleep(600)
        """,
    )
    lc_process = subprocess.Popen(
        [sys.executable, "-c", _LC_PROCESS, redis_url, str(data_dir), NODE, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert lc_process.stdout is not None
        launcher_pid = int(lc_process.stdout.readline())
        wait_for(lambda: counter.exists(), "the worker to start")
    finally:
        lc_process.kill()
        lc_process.wait()
    assert process_alive(launcher_pid)  # not taken down with the LC

    runtime, _ = make_runtime()
    status = runtime.status("survivor")
    assert status is not None and status.phase == WorkerPhase.RUNNING
    assert status.pid == launcher_pid
    runtime.close()
    ProcessRuntime(redis.Redis.from_url(redis_url), data_dir, node=NODE).remove_all()
    assert not process_alive(launcher_pid)
    assert counter.read_text() == "x\n"
