"""``sedna up`` survives its own crash: kill -9, start again on the same data directory.

Same ports, no orphaned Mosquitto, Redis or component process (API server, GM, knowledge
base, LCs: each runs in a process of its own), the workers keep running (same PIDs, started
once), every report a worker had accepted reaches the GM. While up, a Redis or a component
process that dies is restarted, and Redis takes no command without its password. Ctrl-C then
stops everything, the workers included.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from broker.localservices import ProcessIdentity
from tests.e2e import joint_inference, models
from tests.services import wait_for

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow
REPORTS = 40
UP = [sys.executable, "-m", "sedna_cli.main", "up"]


class Up:
    """One ``sedna up`` process on a data directory."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [*UP, "--data-dir", str(data), "--nodes", "cloud0,edge0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        threading.Thread(
            target=lambda: self.lines.extend(iter(self.process.stdout.readline, "")), daemon=True
        ).start()
        wait_for(
            lambda: self.process.poll() is not None or any("sedna is up" in x for x in self.lines),
            90,
            "sedna up to come up",
        )
        assert self.process.poll() is None, self.lines

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(30)


def _kubectl(data: Path, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        ["kubectl", "--cache-dir", str(data.parent / "kube-cache"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "KUBECONFIG": str(data / "kubeconfig")},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _inference_number(data: Path) -> int:
    try:
        out = _kubectl(data, "get", "jis", "steady", "-o", "json")
    except AssertionError:  # the API server is not answering (yet)
        return -1
    metrics = json.loads(out).get("status", {}).get("metrics") or []
    values = [m.get("value") for m in metrics if m.get("key") == "inferenceNumber"]
    return int(values[0]) if values else 0


def _service_pid(data: Path, directory: str, binary: str) -> int:
    identity = ProcessIdentity.load(data / directory / f"{binary}.pid")
    assert identity is not None and identity.alive()
    return identity.pid


def _processes_in(directory: Path) -> list[int]:
    """PIDs working in ``directory`` (a service's own directory is its working directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.readlink(entry / "cwd") == str(directory):
                found.append(int(entry.name))
        except OSError:
            continue
    return [pid for pid in found if ProcessIdentity.of(pid) is not None]


def _endpoints(data: Path) -> dict[str, Any]:
    endpoints = json.loads((data / "endpoints.json").read_text())
    return {
        "api": endpoints["apiServer"]["url"],
        "mqtt": endpoints["mqtt"]["url"],
        "redis": endpoints["redis"]["url"],
        "gm": endpoints["gm"]["metrics"],
        "kb": endpoints["kb"]["url"],
        "lcs": {node: lc["reportServer"] for node, lc in endpoints["lcs"].items()},
    }


def test_kill_9_of_sedna_up_and_restart_keeps_ports_workers_and_reports(tmp_path: Path) -> None:
    data = (tmp_path / "sedna").resolve()
    starts = tmp_path / "starts.txt"
    first = Up(data)
    try:
        manifests = [
            *models(),
            joint_inference(
                "steady",
                {"REPORTS": str(REPORTS), "PERIOD": "0.25", "STARTS_FILE": str(starts)},
                {"STARTS_FILE": str(starts)},
            ),
        ]
        _kubectl(data, "apply", "-f", "-", stdin="---\n".join(yaml.safe_dump(m) for m in manifests))
        wait_for(lambda: _inference_number(data) >= 5, 60, "first reports in status")
        before = _endpoints(data)
        workers = [int(pid) for pid in starts.read_text().split()]
        services = {
            "mosquitto": _service_pid(data, "mosquitto", "mosquitto"),
            "redis": _service_pid(data, "redis", "redis-server"),
        }
        first_parts = {part: _part_pid(data, part) for part in PARTS}
    finally:
        first.process.kill()  # kill -9: no cleanup at all
        first.process.wait()
    assert all(ProcessIdentity.of(pid) for pid in [*workers, *services.values()])
    # The component processes see their parent gone and stop; the workers stay.
    wait_for(
        lambda: not any(ProcessIdentity.of(pid) for pid in first_parts.values()),
        30,
        "the crashed run's component processes to stop",
    )
    assert all(ProcessIdentity.of(pid) for pid in workers)

    second = Up(data)
    try:
        assert _endpoints(data) == before
        for pid in services.values():
            assert ProcessIdentity.of(pid) is None, "a service of the crashed run still runs"
        assert len(_processes_in(data / "mosquitto")) == 1
        assert len(_processes_in(data / "redis")) == 1
        wait_for(lambda: _inference_number(data) == REPORTS, 90, "every report in status")
        assert [int(pid) for pid in starts.read_text().split()] == workers  # none restarted
        assert all(ProcessIdentity.of(pid) for pid in workers)

        url = before["redis"]
        with pytest.raises(redis.AuthenticationError):
            redis.Redis.from_url(url.replace(url.split("@")[0] + "@", "redis://")).ping()
        store = redis.Redis.from_url(url)

        def delivered() -> bool:
            accepted = sum(int(store.get(f"sedna:lc:{n}:outbox:seq") or 0) for n in workers_nodes)
            pending = sum(store.zcard(f"sedna:lc:{n}:outbox:order") for n in workers_nodes)
            applied = len(list(store.scan_iter("sedna:gm:seen:*")))
            return pending == 0 and applied == accepted

        workers_nodes = ("cloud0", "edge0")
        wait_for(delivered, 30, "every accepted message applied once, outbox empty")

        # Redis dies alone: the supervisor starts it again, on the same port.
        old_redis = _service_pid(data, "redis", "redis-server")
        os.kill(old_redis, signal.SIGKILL)
        wait_for(
            lambda: (
                (new := ProcessIdentity.load(data / "redis" / "redis-server.pid")) is not None
                and new.pid != old_redis
                and new.alive()
            ),
            30,
            "Redis restarted by sedna up",
        )
        wait_for(lambda: _try_ping(store), 30, "Redis answering on the same port")

        # A component process dies alone (the LC of cloud0, the API server): each is started
        # again on its port; the workers keep running, kubectl keeps working.
        for part in ("lc/cloud0", "apiserver"):
            old_pid = _part_pid(data, part)
            os.kill(old_pid, signal.SIGKILL)
            wait_for(lambda p=part, o=old_pid: _restarted(data, p, o), 60, f"{part} restarted")
        assert _endpoints(data) == before
        wait_for(lambda: _inference_number(data) == REPORTS, 60, "the API server answering")
        assert all(ProcessIdentity.of(pid) for pid in workers)
        assert [int(pid) for pid in starts.read_text().split()] == workers
        parts = {part: _part_pid(data, part) for part in PARTS}
    finally:
        second.stop()
    assert second.process.returncode == 0, second.lines
    assert _processes_in(data / "redis") == []
    for part, pid in parts.items():  # a clean stop leaves no component process behind
        assert ProcessIdentity.of(pid) is None, part
        assert not (data / part / f"{part.split('/')[0]}.pid").exists(), part
    # Each part logs JSON lines to a file in its own directory.
    for part in PARTS:
        first_line = (data / part / f"{part.split('/')[0]}.log").read_text().splitlines()[0]
        assert json.loads(first_line)["level"] in {"info", "warning"}, part
    assert not any(ProcessIdentity.of(pid) for pid in workers), "sedna up stopped its workers"


PARTS = ("apiserver", "gm", "kb", "lc/cloud0", "lc/edge0")


def _part_pid(data: Path, part: str) -> int:
    """The pid of a component process of ``sedna up`` (``apiserver``, ``gm``, ``lc/<node>``)."""
    identity = ProcessIdentity.load(data / part / f"{part.split('/')[0]}.pid")
    assert identity is not None and identity.alive(), part
    return identity.pid


def _restarted(data: Path, part: str, old_pid: int) -> bool:
    identity = ProcessIdentity.load(data / part / f"{part.split('/')[0]}.pid")
    return identity is not None and identity.pid != old_pid and identity.alive()


def _try_ping(store: redis.Redis) -> bool:
    try:
        return bool(store.ping())
    except redis.RedisError:
        return False
