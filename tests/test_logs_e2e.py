"""``sedna logs`` against a real stack (nodes cloud0 and edge1): a worker's log that lives on
edge1 is read from the cloud side through the API server (which asks edge1's LC), followed while
new lines come, searched with ``--grep``; bad tokens are refused and unknown names are named."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from gm.app import api_client_for
from lc import podlogs
from sedna_cli import joblogs
from sedna_cli.main import main
from sedna_cli.stack import Stack, StackOptions
from tests.e2e import models
from tests.services import wait_for

ROOT = Path(__file__).resolve().parent.parent
SEDNA = [sys.executable, "-m", "sedna_cli.main"]
JOB = "chatty"
pytestmark = pytest.mark.slow

WORKER = """
import os, sys, time
stop = sys.argv[1]
print("hello from", os.environ["WORKER_NAME"], flush=True)
tick = 0
while not os.path.exists(stop):
    tick += 1
    print("tick", tick, flush=True)
    if tick == 3:
        print("found the needle-7781 here", file=sys.stderr, flush=True)
    time.sleep(0.2)
print("bye", flush=True)
"""


@dataclass
class Result:
    """How a command ended and what it printed."""

    returncode: int
    stdout: str
    stderr: str


class Env:
    """The running stack, its kubeconfig and the two workers' stop files."""

    def __init__(self, stack: Stack, root: Path) -> None:
        self.stack = stack
        self.root = root
        self.kubeconfig = stack.kubeconfig
        self.api = api_client_for(str(stack.kubeconfig))
        self.stops = {"edge1": root / "stop-edge", "cloud0": root / "stop-cloud"}
        self.workers: dict[str, str] = {}  # node -> worker name
        self.capsys: pytest.CaptureFixture[str]

    def logs(self, *args: str, kubeconfig: Path | None = None) -> Result:
        """``sedna logs ARGS`` (the command's own entry point, in this process: a fresh Python
        takes seconds to import on a loaded box; the follow tests run it as a process)."""
        self.capsys.readouterr()
        code = main(["logs", "--kubeconfig", str(kubeconfig or self.kubeconfig), *args])
        out, err = self.capsys.readouterr()
        return Result(code, out, err)

    def env(self, kubeconfig: Path | None = None) -> dict[str, str]:
        return {
            **os.environ,
            "KUBECONFIG": str(kubeconfig or self.kubeconfig),
            "PYTHONPATH": str(ROOT),
        }


def template(node: str, script: Path, stop: Path) -> dict[str, Any]:
    return {
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": "infer",
                    "image": "python:3",
                    "command": [sys.executable, str(script), str(stop)],
                }
            ],
        }
    }


@pytest.fixture(scope="module")
def stack_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("logs-e2e")
    # As sedna up runs it: the API server, GM, knowledge base and each LC in a process of its own.
    stack = Stack(StackOptions(data_dir=root / "sedna", nodes=["cloud0", "edge1"], processes="all"))
    stack.start()
    try:
        env = Env(stack, root / "elsewhere")
        env.root.mkdir()
        script = root / "chatty.py"
        script.write_text(textwrap.dedent(WORKER))
        service = {
            "apiVersion": "sedna.io/v1alpha1",
            "kind": "JointInferenceService",
            "metadata": {"name": JOB, "namespace": "default"},
            "spec": {
                "edgeWorker": {
                    "model": {"name": "small-model"},
                    "hardExampleMining": {"name": "IBT", "parameters": []},
                    "template": template("edge1", script, env.stops["edge1"]),
                },
                "cloudWorker": {
                    "model": {"name": "big-model"},
                    "template": template("cloud0", script, env.stops["cloud0"]),
                },
            },
        }
        manifest = "---\n".join(yaml.safe_dump(o) for o in [*models(), service])
        subprocess.run(
            ["kubectl", "--cache-dir", str(root / "cache"), "apply", "-f", "-"],
            input=manifest,
            text=True,
            check=True,
            capture_output=True,
            env=env.env(),
        )
        custom = client.CustomObjectsApi(env.api)

        def workers() -> dict[str, str]:
            obj = custom.get_namespaced_custom_object(
                "sedna.io", "v1alpha1", "default", "jointinferenceservices", JOB
            )
            found = (obj.get("status") or {}).get("workers") or []
            return {w["nodeName"]: w["name"] for w in found if w.get("phase") == "Running"}

        wait_for(lambda: len(workers()) == 2, 120, "both workers to run")
        env.workers = workers()
        yield env
    finally:
        for stop in env.stops.values():
            stop.touch()
        stack.stop()


@pytest.fixture
def env(stack_env: Env, capsys: pytest.CaptureFixture[str]) -> Env:
    stack_env.capsys = capsys
    return stack_env


def test_the_edge_workers_log_lives_on_edge1_in_the_pod_layout(env: Env) -> None:
    worker = env.workers["edge1"]
    edge_root = env.stack.data_dir / "lc" / "edge1" / "var" / "log"
    wait_for(lambda: podlogs.runs(edge_root, "default", worker), 60, "the edge worker's log")
    assert not podlogs.runs(env.stack.data_dir / "lc" / "cloud0" / "var" / "log", "default", worker)
    labels = json.loads((edge_root / "targets" / f"default_{worker}.json").read_text())[0]["labels"]
    assert labels["job"] == JOB and labels["node"] == "edge1" and labels["worker"] == worker
    assert labels["kind"] == "JointInferenceService" and labels["container"] == "infer"

    # The LC's own JSON lines about the worker carry the same labels.
    lc_log = env.stack.data_dir / "lc" / "edge1" / "lc.log"
    entries = [json.loads(line) for line in lc_log.read_text().splitlines() if line.startswith("{")]
    started = [
        e for e in entries if e.get("message") == "worker started" and e.get("worker") == worker
    ]
    assert started, entries[-5:]
    assert {k: started[0][k] for k in ("namespace", "job", "kind", "node")} == {
        "namespace": "default", "job": JOB, "kind": "JointInferenceService", "node": "edge1",
    }  # fmt: skip


def test_logs_of_a_worker_on_another_node_and_grep(env: Env) -> None:
    worker = env.workers["edge1"]
    wait_for(
        lambda: any("needle" in line for line in joblogs.worker_log(env.api, "default", worker)),
        60,
        "the edge worker's third tick",
    )
    shown = env.logs(JOB, "--worker", worker)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"hello from {worker}\ntick 1\n")

    everyone = env.logs(JOB, "--grep", "needle-7781")
    assert everyone.returncode == 0, everyone.stderr
    lines = everyone.stdout.splitlines()
    assert f"[{worker}] found the needle-7781 here" in lines
    assert all("needle-7781" in line for line in lines)
    assert {line.split("]")[0][1:] for line in lines} == set(env.workers.values())

    tail = env.logs(JOB, "--worker", worker, "--tail", "2")
    assert len(tail.stdout.splitlines()) == 2 and "hello" not in tail.stdout

    # kubectl reads the same route (kubectl logs needs a Pod object; the raw path does not).
    raw = subprocess.run(
        ["kubectl", "get", "--raw", f"/api/v1/namespaces/default/pods/{worker}/log?tailLines=1"],
        capture_output=True,
        text=True,
        env=env.env(),
        timeout=60,
    )
    assert raw.returncode == 0, raw.stderr
    assert raw.stdout.startswith("tick ")


def _follow(env: Env, *args: str) -> tuple[subprocess.Popen, list[str]]:
    """``sedna logs ARGS`` running, and the lines it printed so far (live)."""
    process = subprocess.Popen(
        [*SEDNA, "logs", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=env.root,
        env=env.env(),
    )
    lines: list[str] = []
    threading.Thread(
        target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True
    ).start()
    return process, lines


def _ticks(lines: list[str]) -> list[int]:
    return [int(line.split()[1]) for line in list(lines) if line.startswith("tick ")]


def test_follow_shows_new_lines_and_ends_with_the_worker(env: Env) -> None:
    worker = env.workers["edge1"]
    before = _ticks(env.logs(JOB, "--worker", worker).stdout.splitlines())
    follow, lines = _follow(env, JOB, "--worker", worker, "-f")
    try:
        # Lines the worker writes after the command started reach it.
        wait_for(lambda: max(_ticks(lines), default=0) > max(before) + 3, 60, "new ticks")
        assert follow.poll() is None
        env.stops["edge1"].touch()
        assert follow.wait(60) == 0, follow.stderr.read()
        time.sleep(0.2)  # the reader thread has the last line
        assert lines[-1] == "bye\n" and lines[0] == f"hello from {worker}\n"
    finally:
        if follow.poll() is None:
            follow.kill()


def test_ctrl_c_ends_a_follow_cleanly(env: Env) -> None:
    worker = env.workers["cloud0"]
    follow, lines = _follow(env, JOB, "--worker", worker, "--follow", "--tail", "1")
    try:
        wait_for(lambda: len(_ticks(lines)) >= 3, 60, "the cloud worker's ticks")
        follow.send_signal(signal.SIGINT)
        assert follow.wait(30) == 0
        assert "Traceback" not in follow.stderr.read()
    finally:
        if follow.poll() is None:
            follow.kill()


def test_a_wrong_token_is_refused_by_the_api_and_by_the_lc(env: Env, tmp_path: Path) -> None:
    config = yaml.safe_load(env.kubeconfig.read_text())
    for user in config["users"]:
        user["user"]["token"] = "not-the-token"
    wrong = tmp_path / "kubeconfig"
    wrong.write_text(yaml.safe_dump(config))
    refused = env.logs(JOB, kubeconfig=wrong)
    assert refused.returncode == 1 and "401" in refused.stderr and refused.stdout == ""

    # The LC's own endpoint (where the Node status says it is) takes only the node's token.
    node = client.CoreV1Api(env.api).read_node("edge1").to_dict()
    port = node["status"]["daemon_endpoints"]["kubelet_endpoint"]["port"]
    url = f"http://127.0.0.1:{port}/containerLogs/default/{env.workers['edge1']}/infer"
    for headers in ({}, {"Authorization": "Bearer not-the-token"}):
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10)
        assert caught.value.code == 401


def test_unknown_names_and_an_unreachable_node_are_named(env: Env) -> None:
    missing = env.logs("no-such-job")
    assert missing.returncode == 1
    assert "no job named 'no-such-job' in namespace 'default'" in missing.stderr

    elsewhere = env.logs(JOB, "-n", "other")
    assert "in namespace 'other'" in elsewhere.stderr

    worker = env.logs(JOB, "--worker", "no-such-worker")
    assert worker.returncode == 1
    assert "has no worker 'no-such-worker'" in worker.stderr
    assert env.workers["edge1"] in worker.stderr  # the workers it has

    core = client.CoreV1Api(env.api)
    endpoints = core.read_node("edge1").status.daemon_endpoints.kubelet_endpoint.port
    core.patch_node_status(
        "edge1", {"status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": 1}}}}
    )
    try:
        down = env.logs(JOB, "--worker", env.workers["edge1"])
        assert down.returncode == 1
        assert "node edge1 is unreachable at 127.0.0.1:1" in down.stderr
    finally:
        core.patch_node_status(
            "edge1", {"status": {"daemonEndpoints": {"kubeletEndpoint": {"Port": endpoints}}}}
        )
