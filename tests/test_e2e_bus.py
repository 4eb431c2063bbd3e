"""Issue 3 end to end: kubectl -> API -> GM -> MQTT -> LC -> worker processes -> status."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from broker.upstream import Upstream
from gm.app import GMApp
from lc import settings as lc_settings
from lc.agent import LocalController
from tests.e2e import Cluster, joint_inference, models
from tests.services import wait_for

pytestmark = pytest.mark.slow


def _metrics(obj: dict[str, Any]) -> dict[str, str]:
    return {m["key"]: m["value"] for m in (obj.get("status") or {}).get("metrics") or []}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_workers_run_on_their_nodes_report_and_stop_on_delete(cluster: Cluster) -> None:
    cluster.apply(models())
    cluster.apply(joint_inference("demo", {"REPORTS": "3"}))

    def running() -> bool:
        status = cluster.status("jointinferenceservices", "demo")
        conditions = status.get("conditions") or [{}]
        return status.get("active") == 2 and conditions[-1].get("type") == "Running"

    wait_for(running, 30, "both workers running")
    edge = cluster.stack.lcs["edge0"].runtime.status("demo-edge")
    cloud = cluster.stack.lcs["cloud0"].runtime.status("demo-cloud")
    assert edge is not None and cloud is not None
    assert cluster.stack.lcs["cloud0"].runtime.status("demo-edge") is None
    wait_for(
        lambda: (
            _metrics(cluster.get("jointinferenceservices", "demo")).get("inferenceNumber") == "3"
        ),
        30,
        "the edge worker's counts in status.metrics",
    )
    table = cluster.kubectl("get", "jis", "demo")
    assert "Running" in table and "demo" in table

    pids = [edge.pid, cloud.pid]
    assert all(pid and _pid_alive(pid) for pid in pids)
    started = time.monotonic()
    cluster.kubectl("delete", "jointinferenceservices.sedna.io", "demo")
    wait_for(lambda: not any(_pid_alive(p) for p in pids if p), 5, "workers stopped")
    assert time.monotonic() - started < 5
    assert cluster.stack.lcs["edge0"].runtime.status("demo-edge") is None


def test_dataset_sample_count_follows_its_index_file(cluster: Cluster, tmp_path: Path) -> None:
    index = tmp_path / "train.txt"
    index.write_text("a.jpg 0\nb.jpg 1\n")
    cluster.apply(
        {
            "apiVersion": "sedna.io/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": "ds", "namespace": "default"},
            "spec": {"url": str(index), "format": "txt", "nodeName": "edge0"},
        }
    )

    def samples() -> int | None:
        return cluster.status("datasets", "ds").get("numberOfSamples")

    wait_for(lambda: samples() == 2, 30, "2 samples")
    with index.open("a") as handle:
        handle.write("c.jpg 0\nd.jpg 1\ne.jpg 1\n")
    wait_for(lambda: samples() == 5, 30, "5 samples after appending")


def test_invalid_resource_is_refused_and_the_gm_keeps_working(cluster: Cluster) -> None:
    out = cluster.kubectl(
        "apply",
        "-f",
        "-",
        stdin='{"apiVersion":"sedna.io/v1alpha1","kind":"JointInferenceService",'
        '"metadata":{"name":"bad"},"spec":{"edgeWorker":{}}}',
        check=False,
    )
    assert "spec.cloudWorker" in out
    cluster.apply(models())
    cluster.apply(joint_inference("after", {"REPORTS": "1"}))
    wait_for(
        lambda: cluster.status("jointinferenceservices", "after").get("active") == 2,
        30,
        "the next service still runs",
    )


def _restart_lc(cluster: Cluster, node: str) -> None:
    old = cluster.stack.lcs[node]
    port = old.reports.port
    old.stop()
    values = old.settings.model_dump()
    values["report_port"] = port
    fresh = LocalController(lc_settings.build(values))
    fresh.start()
    cluster.stack.lcs[node] = fresh


def test_every_report_arrives_exactly_once_through_outages(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Broker frozen, broker killed, LC, GM and Redis restarted: no report lost or doubled."""
    applied: list[tuple[str, int]] = []

    def record_applied_reports(app: GMApp) -> None:
        def recording(batch: list[Upstream]) -> None:  # each committed batch
            for item in batch:
                payload = item.envelope.payload
                info = (payload.get("output") or {}).get("taskInfo") or {}
                if "inferenceNumber" in info:
                    applied.append((payload["worker"], info["inferenceNumber"]))

        app.receiver.listeners.append(recording)

    assert cluster.stack.gm is not None
    record_applied_reports(cluster.stack.gm)
    starts = tmp_path / "starts.txt"
    total = 50
    cluster.apply(models())
    cluster.apply(
        joint_inference(
            "steady",
            {"REPORTS": str(total), "PERIOD": "0.5", "STARTS_FILE": str(starts)},
            {"STARTS_FILE": str(starts)},
        )
    )
    wait_for(lambda: len(applied) >= 3, 30, "first reports")

    broker = cluster.stack.mosquitto
    broker.freeze()
    time.sleep(20)
    broker.thaw()
    wait_for(lambda: len(applied) >= 12, 60, "reports after the freeze")

    broker.kill()
    time.sleep(2)
    broker.restart()
    wait_for(lambda: len(applied) >= 18, 60, "reports after the broker restart")

    _restart_lc(cluster, "edge0")
    wait_for(lambda: len(applied) >= 24, 60, "reports after the LC restart")

    old_gm = cluster.stack.gm
    old_gm.stop()
    new_gm = GMApp(old_gm.settings)
    record_applied_reports(new_gm)
    new_gm.start()
    cluster.stack.gm = new_gm
    wait_for(lambda: len(applied) >= 28, 60, "reports after the GM restart")

    cluster.stack.redis.restart()
    wait_for(lambda: len(applied) >= 32, 60, "reports after the Redis restart")

    wait_for(lambda: len(applied) >= total, 90, "every report")
    numbers = [n for worker, n in applied if worker == "steady-edge"]
    assert sorted(numbers) == list(range(1, total + 1))
    assert len(starts.read_text().splitlines()) == 2  # edge and cloud, each started once


def test_resource_deleted_while_the_broker_is_down_stops_its_workers(cluster: Cluster) -> None:
    cluster.apply(models())
    cluster.apply(joint_inference("doomed", {"REPORTS": "1"}))
    wait_for(
        lambda: cluster.stack.lcs["edge0"].runtime.status("doomed-edge") is not None,
        30,
        "worker started",
    )
    edge = cluster.stack.lcs["edge0"].runtime.status("doomed-edge")
    assert edge is not None and edge.pid
    broker = cluster.stack.mosquitto
    broker.kill()
    cluster.kubectl("delete", "jointinferenceservices.sedna.io", "doomed")
    time.sleep(1)
    broker.restart()
    wait_for(lambda: not _pid_alive(edge.pid), 30, "worker stopped after the broker returned")


def test_malformed_upstream_payloads_are_counted_dropped_and_harmless(cluster: Cluster) -> None:
    from broker.client import BusClient
    from broker.envelope import Envelope

    assert cluster.stack.mosquitto is not None and cluster.stack.gm is not None
    metrics = cluster.stack.gm.metrics
    topic = "sedna/node/edge0/up/JointInferenceService/default/x"
    with BusClient("test-edge0-intruder", cluster.stack.mosquitto.settings("edge0")) as bus:
        bus.start(wait=10)
        bus.publish(topic, b"{not json")
        bad_payload = Envelope(seq=1, node="edge0", payload={"type": "worker", "phase": 3})
        bus.publish(topic, bad_payload)

    def dropped() -> float:
        return sum(metrics.malformed.labels(source=s)._value.get() for s in ("decode", "payload"))

    wait_for(lambda: dropped() == 2, 10, "both bad messages counted")
    cluster.apply(models())
    cluster.apply(joint_inference("still-fine", {"REPORTS": "1"}))
    wait_for(
        lambda: cluster.status("jointinferenceservices", "still-fine").get("active") == 2,
        30,
        "the GM still reconciles",
    )


def test_stopping_the_stack_stops_its_workers(cluster: Cluster) -> None:
    cluster.apply(models())
    cluster.apply(joint_inference("short-lived", {"REPORTS": "0"}))
    wait_for(
        lambda: cluster.status("jointinferenceservices", "short-lived").get("active") == 2,
        30,
        "both workers running",
    )
    pids = [
        status.pid
        for lc in cluster.stack.lcs.values()
        for status in lc.runtime.statuses()
        if status.pid
    ]
    assert len(pids) == 2
    cluster.stack.stop()
    wait_for(lambda: not any(_pid_alive(pid) for pid in pids), 10, "workers stopped")
