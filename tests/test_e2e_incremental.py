"""Issue 11 end to end: the seed's IncrementalLearningJob shape runs the digits example through
the real control plane (embedded API server, GM, LCs, Mosquitto, Redis, kubectl)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import Cluster
from tests.services import wait_for

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "incremental_learning"
sys.path.insert(0, str(EXAMPLE))

from digits_il import Workspace, job_manifests  # noqa: E402

ROUND_TIMEOUT = 120.0


def metrics(status: dict[str, Any]) -> dict[str, str]:
    return {m["key"]: m["value"] for m in status.get("metrics") or []}


def wait_round_done(cluster: Cluster, round_: int) -> dict[str, Any]:
    """The status once round ``round_`` is over (back to Train, Waiting)."""
    found: dict[str, Any] = {}

    def done() -> bool:
        found.update(cluster.status("incrementallearningjobs", "digits-demo"))
        return found.get("round") == round_ and found.get("state") == "Waiting"

    wait_for(done, ROUND_TIMEOUT, f"round {round_} to finish")
    return found


def served_pass(cluster: Cluster, after_pass: int) -> dict[str, str]:
    """The inference worker's report of a pass that started after ``after_pass``."""
    found: dict[str, str] = {}

    def newer() -> bool:
        found.update(metrics(cluster.status("incrementallearningjobs", "digits-demo")))
        return int(found.get("pass", "0")) > after_pass + 1

    wait_for(newer, 60, f"an inference pass after {after_pass}")
    return found


def test_seed_shape_learns_round_after_round_with_hot_update(
    cluster: Cluster, tmp_path: Path
) -> None:
    work = Workspace(tmp_path / "digits")
    work.prepare()
    cluster.apply(job_manifests(work, node="edge0", check_period=1, poll_period=1))
    initial = served_pass(cluster, 0)
    assert float(initial["accuracy"]) == pytest.approx(0.741, abs=0.02)
    accuracy, hard, pids = (
        [float(initial["accuracy"])],
        [int(initial["passHardExamples"])],
        {initial["pid"]},
    )
    batches = work.batches()
    decisions = []
    for round_ in (1, 2, 3):
        work.append(batches[round_ - 1])
        status = wait_round_done(cluster, round_)
        decisions.append(status["lastDecision"])
        served = served_pass(cluster, int(metrics(status).get("pass", "0")))
        accuracy.append(float(served["accuracy"]))
        hard.append(int(served["passHardExamples"]))
        pids.add(served["pid"])
        assert status["roundData"]["train"] == 240
        assert Path(status["roundData"]["trainURL"]).read_text().count("\n") == 240
    assert [d["deploy"] for d in decisions] == [True, True, False]
    assert status["deploys"] == 2 and status["skippedDeploys"] == 1
    assert accuracy[0] < 0.8 and accuracy[-1] >= 0.95
    assert hard[0] > hard[1] >= hard[-1]
    assert len(pids) == 1  # hot update: the serving process never restarted
    conditions = [(c["stage"], c["type"]) for c in status["conditions"]]
    for stage in ("Train", "Eval", "Deploy"):
        assert {t for s, t in conditions if s == stage} >= {"Waiting", "Ready", "Completed"}
    assert ("Train", "Running") in conditions or ("Train", "Starting") in conditions
    he_index = (work.hard_examples / "index.txt").read_text().splitlines()
    assert len(he_index) >= hard[0]
    table = cluster.kubectl("get", "il", "digits-demo")
    header, row = table.splitlines()[:2]
    assert header.split()[:4] == ["NAME", "STAGE", "STATE", "ROUND"]
    assert row.split()[1:4] == ["Train", "Waiting", "3"]
    described = cluster.kubectl("describe", "il", "digits-demo")
    assert "no need to deploy" in described and "Deployed" in described
    print(json.dumps({"accuracy": accuracy, "hard": hard, "decisions": decisions}, default=str))


def _restart_lc(cluster: Cluster, node: str) -> None:
    from lc import LocalController
    from lc import settings as lc_settings

    old = cluster.stack.lcs[node]
    port = old.reports.port
    old.stop()
    values = old.settings.model_dump()
    values["report_port"] = port
    fresh = LocalController(lc_settings.build(values))
    fresh.start()
    cluster.stack.lcs[node] = fresh


def _restart_gm(cluster: Cluster) -> None:
    from gm.app import GMApp

    old = cluster.stack.gm
    assert old is not None
    old.stop()
    fresh = GMApp(old.settings)
    fresh.start()
    cluster.stack.gm = fresh


def test_failed_round_then_lc_and_gm_restarts_mid_round_lose_nothing(
    cluster: Cluster, tmp_path: Path
) -> None:
    work = Workspace(tmp_path / "digits")
    work.prepare()
    markers = tmp_path / "markers"
    markers.mkdir()
    objects = job_manifests(work, node="edge0", hot=False, check_period=1)
    train = objects[-1]["spec"]["trainSpec"]["template"]["spec"]["containers"][0]
    train["args"] = [str(Path(__file__).parent / "workers" / "il_train.py")]
    train["env"] = [{"name": "MARKER_DIR", "value": str(markers)}]
    cluster.apply(objects)
    served = served_pass(cluster, 0)
    batches = work.batches()

    # round 1: the train worker exits 0 without reporting a model -> the stage fails
    (markers / "fail-next").touch()
    work.append(batches[0])
    status = wait_round_done(cluster, 1)
    assert status["failedRounds"] == 1 and "trainedModel" not in status
    failed = [c for c in status["conditions"] if c["type"] == "Failed"]
    assert failed[0]["stage"] == "Train"
    assert "exited without reporting a model" in failed[0]["message"]

    # round 2: held mid-training while the LC, then the GM, are restarted under it
    (markers / "hold").touch()
    work.append(batches[1])
    wait_for(
        lambda: cluster.status("incrementallearningjobs", "digits-demo").get("state") == "Running",
        ROUND_TIMEOUT,
        "round 2's train worker to run",
    )
    _restart_lc(cluster, "edge0")
    _restart_gm(cluster)  # its start-up once sent partial manifests, stopping this worker
    (markers / "hold").unlink()
    status = wait_round_done(cluster, 2)
    starts = (markers / "starts.txt").read_text().splitlines()
    assert [s.split()[0].rsplit("/", 1)[-1] for s in starts] == ["1", "2"]  # round 2 trained once
    assert status["deploys"] == 1 and status["trainedModel"]["url"].endswith("train/2/model.pkl")
    ready = [c for c in status["conditions"] if (c["stage"], c["type"]) == ("Train", "Ready")]
    assert [c["round"] for c in ready] == [1, 2]  # no round cut twice
    # cold update: the deploy Model's file is the trained model, the worker restarted on it
    assert work.deploy_model.read_bytes() == Path(status["trainedModel"]["url"]).read_bytes()
    after: dict[str, str] = {}

    def restarted() -> bool:
        after.update(metrics(cluster.status("incrementallearningjobs", "digits-demo")))
        return after.get("pid") != served["pid"]

    wait_for(restarted, 60, "the inference worker to restart on the new model")
    assert float(served_pass(cluster, int(after["pass"]))["accuracy"]) > 0.85
