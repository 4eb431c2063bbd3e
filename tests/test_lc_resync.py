"""Downstream at scale: an LC that was away takes its node's whole desired state in one pass.

The GM side is the GM's own `gm.downstream.DownstreamPublisher` on a real Mosquitto; the node
side a real `lc.agent.LocalController` running real worker processes (``sleep``). While the LC
is down, many jobs are created, changed and deleted; when it comes back it receives one message
(the retained snapshot), runs one pass, and runs exactly the workers it should -- the deleted
ones stopped, the changed ones restarted. Snapshots that are out of date, or that do not
validate, change nothing.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker import BusClient, free_port, topics
from broker.localservices import MosquittoService, RedisService
from gm.downstream import DownstreamPublisher, worker_message
from lc import settings as lc_settings
from lc.agent import LocalController
from tests.services import wait_for

NODE = "edge0"
JOBS = 40


def _pod(job: str, version: int, tag: str = "a") -> dict[str, Any]:
    """The worker pod of job ``job`` (one worker each), as the GM's edge-process backend."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{job}-worker",
            "namespace": "default",
            "ownerReferences": [
                {"apiVersion": "sedna.io/v1alpha1", "kind": "JointInferenceService", "name": job}
            ],
        },
        "spec": {
            "nodeName": NODE,
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "worker",
                    "image": "python:3",
                    "command": [sys.executable, "-c", "import time; time.sleep(300)"],
                    "env": [{"name": "TAG", "value": tag}],
                }
            ],
        },
    }


def _declare(gm: DownstreamPublisher, job: str, version: int, tag: str = "a") -> None:
    gm.set_owner(
        f"jis/default/{job}", [worker_message(NODE, _pod(job, version, tag), str(version))]
    )


def _settled(gm: DownstreamPublisher, before: int) -> None:
    """Wait until the GM has sent the snapshots of what changed and sends no more."""
    wait_for(lambda: gm.snapshots_sent.get(NODE, 0) > before, 10, "the GM's snapshot")
    last, still = -1, 0
    while still < 3:
        count = gm.snapshots_sent[NODE]
        still = still + 1 if count == last else 0
        last = count
        time.sleep(0.1)


def _lc(
    tmp_path: Path, broker: MosquittoService, store: RedisService, port: int
) -> LocalController:
    values = {
        "node": NODE,
        "data_dir": tmp_path / "lc",
        "report_port": port,
        "redis_url": store.url,
        "mqtt_url": f"mqtt://127.0.0.1:{broker.port}",
        "worker_grace_period": 2.0,
    }
    return LocalController(lc_settings.build(values))


@pytest.fixture
def gm(mosquitto_service: MosquittoService) -> Iterator[DownstreamPublisher]:
    bus = BusClient("test-gm-downstream", mosquitto_service.settings())
    bus.start(wait=10)
    publisher = DownstreamPublisher(bus)
    try:
        yield publisher
    finally:
        publisher.close()
        bus.close()


def _running(lc: LocalController) -> dict[str, str]:
    """Workers whose process runs: name -> the TAG in its environment (which spec it runs)."""
    out = {}
    for status in lc.runtime.statuses():
        if status.phase.value != "Running" or status.pid is None:
            continue
        try:
            environ = Path(f"/proc/{status.pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        tags = [e[4:].decode() for e in environ if e.startswith(b"TAG=")]
        out[status.name] = tags[0] if tags else ""
    return out


def test_an_lc_back_from_an_outage_converges_in_one_message_and_one_pass(
    tmp_path: Path,
    mosquitto_service: MosquittoService,
    redis_service: RedisService,
    gm: DownstreamPublisher,
) -> None:
    port = free_port()
    for index in range(JOBS):
        _declare(gm, f"job-{index:02d}", 10 + index)
    _settled(gm, 0)
    lc = _lc(tmp_path, mosquitto_service, redis_service, port)
    lc.start()
    try:
        wait_for(lambda: len(_running(lc)) == JOBS, 60, f"{JOBS} workers running")
        # A first start is a reconnect with nothing held: one snapshot, no per-object message.
        assert (lc.counts.snapshots, lc.counts.messages) == (1, 0)
        first = {s.name: s.pid for s in lc.runtime.statuses()}
    finally:
        lc.stop()  # the LC goes away; its workers keep running

    # While it is away: 20 jobs created, 10 changed, 10 deleted, one deleted and created again.
    before = gm.snapshots_sent[NODE]
    for index in range(JOBS, JOBS + 20):
        _declare(gm, f"job-{index:02d}", 100 + index)
    for index in range(10):
        _declare(gm, f"job-{index:02d}", 200 + index, tag="b")
    for index in range(10, 20):
        gm.remove_owner(f"jis/default/job-{index:02d}")
    gm.remove_owner("jis/default/job-20")
    _declare(gm, "job-20", 300)
    _settled(gm, before)

    back = _lc(tmp_path, mosquitto_service, redis_service, port)
    back.start()
    try:
        expected = {f"job-{i:02d}-worker": "b" for i in range(10)}
        expected |= {f"job-{i:02d}-worker": "a" for i in range(20, JOBS + 20)}
        wait_for(lambda: _running(back) == expected, 60, "the node's desired state running")
        assert back.counts.messages == 0, "no per-object message was queued or re-sent"
        assert back.counts.snapshots == 1 and back.counts.passes == 1
        now = {s.name: s.pid for s in back.runtime.statuses() if s.phase.value == "Running"}
        kept = [f"job-{i:02d}-worker" for i in range(21, JOBS)]
        assert all(now[name] == first[name] for name in kept), "unchanged workers were restarted"
        assert all(now[f"job-{i:02d}-worker"] != first[f"job-{i:02d}-worker"] for i in range(10))

        # Live again: a change reaches the LC as one per-object message, then its snapshot.
        _declare(gm, "job-99", 400)
        wait_for(lambda: "job-99-worker" in _running(back), 30, "a live change")
        wait_for(lambda: back.counts.snapshots == 2, 10, "the snapshot after it")
        assert back.counts.messages == 1 and back.counts.stale == 0
    finally:
        back.stop(stop_workers=True)


def test_snapshots_out_of_date_or_invalid_change_nothing(
    tmp_path: Path,
    mosquitto_service: MosquittoService,
    redis_service: RedisService,
    gm: DownstreamPublisher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _declare(gm, "kept", 5)
    _settled(gm, 0)
    lc = _lc(tmp_path, mosquitto_service, redis_service, free_port())
    lc.start()
    try:
        wait_for(lambda: _running(lc) == {"kept-worker": "a"}, 30, "the worker running")
        held = lc.desired.generation
        topic = topics.snapshot_topic(NODE)
        publisher = BusClient("test-gm-forger", mosquitto_service.settings())
        publisher.start(wait=10)
        try:
            # Older than the one taken: an empty desired state that must not stop the worker.
            old = {"node": NODE, "generation": held - 1, "items": []}
            publisher.publish(topic, json.dumps(old))
            wait_for(lambda: lc.counts.stale == 1, 10, "the old snapshot ignored")
            bad = {
                "node": NODE,
                "generation": held + 1,
                "items": [{"kind": "Pod", "namespace": "default", "name": "x", "body": {}}],
            }
            with caplog.at_level(logging.ERROR, logger="lc.agent"):
                publisher.publish(topic, json.dumps(bad))
                publisher.publish(topic, b"{not json")
                wait_for(lambda: lc.counts.refused == 2, 10, "both refused")
        finally:
            publisher.close()
        errors = [r.getMessage() for r in caplog.records if "invalid snapshot" in r.getMessage()]
        assert "items.0.resourceVersion: Field required" in errors[0]
        assert "Invalid JSON" in errors[1]
        assert lc.desired.generation == held and lc.counts.snapshots == 1
        assert _running(lc) == {"kept-worker": "a"}
        assert "default/kept-worker" in lc.desired.workers
    finally:
        lc.stop(stop_workers=True)
