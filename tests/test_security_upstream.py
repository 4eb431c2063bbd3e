"""Node authorization: a node's upstream messages change only what the GM placed on that node.

The forger here is edge0 itself, publishing with its own LC's session on its own upstream topics
(which the broker allows): it names cloud0's worker, another job, a Dataset of cloud0 and a false
``node``. Nothing of that may land; every refusal is counted with the node.
"""

from __future__ import annotations

import pytest

from broker.envelope import Envelope
from broker.topics import up_topic
from tests.e2e import Cluster, joint_inference, run_joint_inference, status_metrics
from tests.services import wait_for

pytestmark = pytest.mark.slow


def _dataset(name: str, node: str) -> dict:
    return {
        "apiVersion": "sedna.io/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"url": f"/nonexistent/{name}.txt", "format": "txt", "nodeName": node},
    }


def _refused(cluster: Cluster, reason: str) -> float:
    assert cluster.stack.gm is not None
    return cluster.stack.gm.metrics.refused.labels(node="edge0", reason=reason)._value.get()


def test_forged_upstream_messages_change_nothing_and_are_counted(cluster: Cluster) -> None:
    run_joint_inference(cluster, "guarded", "victim")
    cloud_only = joint_inference("cloud-only", {})
    cloud_only["spec"]["edgeWorker"]["template"]["spec"]["nodeName"] = "cloud0"
    cluster.apply(cloud_only)
    cluster.apply([_dataset("cloud-data", "cloud0")])
    before = {n: cluster.status("jointinferenceservices", n) for n in ("guarded", "victim")}
    edge0 = cluster.stack.lcs["edge0"]

    def forge(kind: str, name: str, payload: dict) -> None:
        # Newer than anything the LC sent (records keep the latest message per worker).
        envelope = Envelope(seq=10**9, node="edge0", payload=payload)
        edge0.bus.publish(up_topic("edge0", kind, "default", name), envelope)

    failed = {"type": "worker", "phase": "Failed", "exitCode": 1, "status": "failed"}
    forge("JointInferenceService", "guarded", {**failed, "worker": "guarded-cloud"})
    forge("JointInferenceService", "victim", {**failed, "worker": "guarded-edge"})
    forge("JointInferenceService", "victim", {**failed, "worker": "phantom-worker"})
    forge("Dataset", "cloud-data", {"type": "dataset", "numberOfSamples": 5100000})
    forge("JointInferenceService", "cloud-only", {"type": "dataset", "numberOfSamples": 7})
    wait_for(lambda: _refused(cluster, "worker-not-on-node") == 2, 15, "two foreign workers")
    wait_for(lambda: _refused(cluster, "worker-of-another-resource") == 1, 15, "another job")
    wait_for(lambda: _refused(cluster, "dataset-not-on-node") == 2, 15, "a Dataset and a job")

    # A message edge0 may send, with a lying `node`: applied, under edge0.
    report = {
        "type": "worker",
        "worker": "guarded-edge",
        "node": "cloud0",
        "status": "running",
        "output": {"ownerInfo": {"inferenceNumber": 42}},
    }
    forge("JointInferenceService", "guarded", report)

    wait_for(
        lambda: status_metrics(cluster, "guarded").get("inferenceNumber") == "42",
        15,
        "the allowed report",
    )
    after = {n: cluster.status("jointinferenceservices", n) for n in ("guarded", "victim")}
    for name in ("guarded", "victim"):
        workers = {w["name"]: w for w in after[name].get("workers") or []}
        assert set(workers) == {f"{name}-edge", f"{name}-cloud"}, "no phantom worker"
        assert all(w.get("phase") != "Failed" for w in workers.values())
        assert workers[f"{name}-edge"]["nodeName"] == "edge0"
        assert after[name].get("failed", 0) == before[name].get("failed", 0) == 0
    dataset = cluster.status("datasets", "cloud-data")
    assert dataset.get("numberOfSamples") != 5100000
