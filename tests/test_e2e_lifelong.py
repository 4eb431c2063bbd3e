"""Issue 12 end to end: the digits example as a LifelongLearningJob through the real control
plane (embedded API server, GM, LCs, Mosquitto, Redis, the knowledge base, kubectl)."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from gm.app import GMApp
from kb import KBServer
from tests.e2e import Cluster
from tests.services import wait_for

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "lifelong_learning"
sys.path.insert(0, str(EXAMPLE))

from job import NAME, Workspace, manifests  # noqa: E402
from run_local import global_model  # noqa: E402

ROUND_TIMEOUT = 180.0
SEEN = ("upright", "mirrored")
KIND = "LifelongLearningJob"


def wait_round_done(cluster: Cluster, round_: int) -> dict[str, Any]:
    """The status once round ``round_`` is over (back to Train, Waiting)."""
    found: dict[str, Any] = {}

    def done() -> bool:
        found.clear()
        found.update(cluster.status("lifelonglearningjobs", NAME))
        return found.get("round") == round_ and found.get("state") == "Waiting"

    wait_for(done, ROUND_TIMEOUT, f"round {round_} to finish")
    return found


def served_pass(work: Workspace) -> dict[str, Any]:
    """An inference pass over the index the job deployed last."""
    found: dict[str, Any] = {}

    def current() -> bool:
        summary, deployed = work.summary(), work.deployed_create_time()
        if summary is None or deployed is None or summary["index_create_time"] != deployed:
            return False
        found.update(summary)
        return True

    wait_for(current, 90, "an inference pass on the deployed index")
    return found


def restart_gm(cluster: Cluster) -> None:
    """Stop the GM and start a new one with the same settings."""
    old = cluster.stack.gm
    assert old is not None
    old.stop()
    cluster.stack.gm = GMApp(old.settings)
    cluster.stack.gm.start()


def restart_kb(cluster: Cluster) -> None:
    """Stop the knowledge base and start it again on the same port and data."""
    old = cluster.stack.kb
    assert old is not None
    old.stop()
    settings = old.settings.model_copy(update={"port": old.port})
    cluster.stack.kb = KBServer(settings)
    cluster.stack.kb.start()


def kb_summary(cluster: Cluster) -> dict[str, Any]:
    """The job's knowledge base as the knowledge base service has it."""
    url = f"{cluster.stack.kb.url}/knowledgebase/summary?kb=default/{NAME}"
    with urllib.request.urlopen(url) as reply:
        return json.loads(reply.read())


def mixed(per_task: dict[str, Any]) -> float:
    total = sum(v["samples"] for v in per_task.values())
    return sum(v["accuracy"] * v["samples"] for v in per_task.values()) / total


def test_knowledge_grows_from_two_tasks_to_three(cluster: Cluster, tmp_path: Path) -> None:
    work = Workspace(tmp_path / "digits")
    work.prepare()
    cluster.apply(manifests(work, check_period=1))
    work.append(list(SEEN))  # 800 rows: 640 train, 160 eval -> the trigger (> 300) fires

    first = wait_round_done(cluster, 1)
    assert first["lastDecision"]["deploy"] is True, first["lastDecision"]
    kb = first["knowledgeBase"]
    assert kb["AIModels"]["numberOfAIModels"] == 2
    assert {m["modelID"] for m in kb["AIModels"]["listOfAIModels"]} == set(SEEN)
    assert all(m["averagePrecision"] > 0.9 for m in kb["AIModels"]["listOfAIModels"])
    assert kb["AIClasses"]["numberOfAIClasses"] == 10
    before = served_pass(work)
    held = before["holdout"]
    assert held["inverted"]["unseen"] == 1.0  # every sample of the unseen task flagged
    assert all(held[t]["unseen"] <= 0.10 for t in SEEN)
    assert mixed(held) == pytest.approx(0.63, abs=0.03)
    train_files = [Path(first["roundData"]["trainURL"])]
    baseline = global_model(work.root, train_files)
    for task in SEEN:  # per-task models beat one global model on each seen task
        assert held[task]["accuracy"] > baseline[task]
    assert before["arrivals"]["inverted"]["unseen"] == 1.0

    def unseen(count: int) -> bool:
        status = cluster.status("lifelonglearningjobs", NAME)
        return status["knowledgeBase"]["samples"]["numberOfUnseenSample"] >= count

    # The inference worker's counts reach status: 540 + 400 unseen rows per pass.
    wait_for(lambda: unseen(940), 60, "the inference worker's unseen count in status")

    # The GM and the knowledge base restart between the rounds: nothing is lost.
    kb_before = cluster.status("lifelonglearningjobs", NAME)["knowledgeBase"]
    restart_gm(cluster)
    restart_kb(cluster)
    kb_after = cluster.status("lifelonglearningjobs", NAME)["knowledgeBase"]
    # The inference worker keeps streaming passes, so its unseen count may only have grown
    # (on a loaded machine a restart can take longer than a pass); the rest is unchanged.
    unseen_before = kb_before["samples"].pop("numberOfUnseenSample")
    assert kb_after["samples"].pop("numberOfUnseenSample") >= unseen_before
    assert kb_after == kb_before
    assert kb_summary(cluster)["AIModels"]["numberOfAIModels"] == 2

    labelled = work.append_labelled_unseen()  # 400 rows: 320 train -> round 2
    assert labelled == 400
    second = wait_round_done(cluster, 2)
    kb = second["knowledgeBase"]
    assert kb["AIModels"]["numberOfAIModels"] == 3
    assert kb["samples"]["numberOfLabeledUnseenSample"] == 320
    after = served_pass(work)
    assert all(v["unseen"] == 0.0 for v in after["holdout"].values())
    assert mixed(after["holdout"]) >= 0.93

    table = cluster.kubectl("get", "ll", NAME)
    header, row = table.splitlines()[:2]
    assert header.split()[:5] == ["NAME", "STAGE", "STATE", "ROUND", "TASKS"]
    assert row.split()[1:5] == ["Train", "Waiting", "2", "3"]
    # The knowledge base holds the same, and the GM's /metrics says so.
    assert kb_summary(cluster)["AIModels"]["numberOfAIModels"] == 3
    with urllib.request.urlopen(f"http://127.0.0.1:{cluster.stack.gm.ops.port}/metrics") as reply:
        text = reply.read().decode()
    assert (
        f'sedna_lifelong_known_tasks{{kind="{KIND}",name="{NAME}",namespace="default"}} 3.0' in text
    )
    assert f'sedna_lifelong_round{{kind="{KIND}",name="{NAME}",namespace="default"}} 2.0' in text
