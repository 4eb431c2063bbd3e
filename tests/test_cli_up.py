"""``sedna up`` as a user runs it: a process that prints where things are and stops on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.test_kb import call
from tests.test_kb import index as kb_index

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "deploy" / "samples"
pytestmark = pytest.mark.slow


@contextmanager
def sedna_up(data_dir: Path, *extra: str) -> Iterator[list[str]]:
    """Run ``sedna up`` until the block ends; yields the lines it printed so far (live)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "sedna_cli.main", "up", "--data-dir", str(data_dir), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True
    )
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not any("sedna is up" in line for line in lines):
            assert process.poll() is None, f"sedna up exited early: {lines}"
            assert time.monotonic() < deadline, f"sedna up did not come up: {lines}"
            time.sleep(0.2)
        yield lines
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
        reader.join(5)
        assert code == 0, f"sedna up exited with {code}: {lines}"


def kubectl(data_dir: Path, cache: Path, *args: str) -> str:
    env = {**os.environ, "KUBECONFIG": str(data_dir / "kubeconfig")}
    result = subprocess.run(
        ["kubectl", "--cache-dir", str(cache), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_up_serves_kubectl_prints_node_states_and_keeps_state_across_restarts(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    cache = tmp_path / "cache"
    with sedna_up(data, "--nodes", "edge0") as lines:
        endpoints = json.loads((data / "endpoints.json").read_text())
        assert set(endpoints) >= {"apiServer", "mqtt", "redis", "gm", "kb", "lcs"}
        assert set(endpoints["mqtt"]["users"]) == {"gm", "edge0"}
        kb_url = endpoints["kb"]["url"] + "/knowledgebase"
        assert call(kb_url, "POST", "/update", kb_index())[0] == 200
        deadline = time.monotonic() + 30
        while not any("node edge0 is online" in line for line in lines):
            assert time.monotonic() < deadline, lines
            time.sleep(0.2)
        out = kubectl(data, cache, "apply", "-f", str(SAMPLES))
        assert out.count("created") == 6
        assert "kubeconfig" in "".join(lines)
    with sedna_up(data, "--nodes", "edge0"):
        # The knowledge base keeps its port and what it learnt.
        kb_again = json.loads((data / "endpoints.json").read_text())["kb"]["url"]
        assert kb_again + "/knowledgebase" == kb_url
        assert call(kb_url, "GET", "/summary")[1]["AIModels"]["numberOfAIModels"] == 2
        listed = kubectl(
            data, cache, "get", "datasets,models,il,federatedlearningtasks", "-o", "name"
        )
        assert "dataset.sedna.io/incremental-dataset" in listed
        assert "model.sedna.io/initial-model" in listed
        assert kubectl(data, cache, "apply", "-f", str(SAMPLES)).count("unchanged") == 6
