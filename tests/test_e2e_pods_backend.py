"""The ``pods`` worker backend: workers become Pods for a kubelet (KubeEdge) to run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from apis import WORKER_TOKEN_ENV
from broker.envelope import Envelope
from broker.topics import up_topic
from gm.app import api_client_for
from lc.agent import LocalController
from tests.e2e import Cluster, joint_inference, models, post_report, status_metrics
from tests.services import wait_for
from tests.test_cluster_rbac import ungranted

pytestmark = pytest.mark.slow


def _env(pod: client.V1Pod) -> dict[str, str]:
    return {e.name: e.value for e in pod.spec.containers[0].env}


def _report(lc: LocalController, worker: str, number: int, token: str) -> tuple[int, Any]:
    """POST a report to ``lc`` as the worker Pod would (the kubelet is absent here)."""
    body = {
        "name": worker,
        "namespace": "default",
        "ownerName": "another-job",  # never trusted: the GM's record names the owner
        "ownerKind": "jointinferenceservice",
        "kind": "inference",
        "status": "running",
        "taskInfo": {"inferenceNumber": number, "hardExampleNumber": 0},
    }
    return post_report(lc, worker, body, token)


def _counted(lc: LocalController) -> dict[str, float]:
    metrics = lc.metrics
    return {
        "received": metrics.reports_received.labels(
            owner_kind="jointinferenceservice"
        )._value.get(),
        "bad_worker_token": metrics.reports_rejected.labels(reason="bad_worker_token")._value.get(),
        "unknown_worker": metrics.reports_rejected.labels(reason="unknown_worker")._value.get(),
    }


def test_workers_become_owned_pods_whose_phases_drive_the_status(
    audit_log: Path, pods_cluster: Cluster
) -> None:
    core = client.CoreV1Api(api_client_for(str(pods_cluster.stack.kubeconfig)))
    pods_cluster.apply(models())
    pods_cluster.apply(joint_inference("svc", {"REPORTS": "0"}))

    def pods() -> dict[str, client.V1Pod]:
        listed = core.list_namespaced_pod("default", label_selector="sedna.io/owner-name=svc")
        return {p.metadata.name: p for p in listed.items}

    wait_for(lambda: set(pods()) == {"svc-edge", "svc-cloud"}, 30, "two worker pods")
    edge = pods()["svc-edge"]
    assert edge.spec.node_name == "edge0"
    assert edge.metadata.owner_references[0].kind == "JointInferenceService"
    env = {e.name: e.value for e in edge.spec.containers[0].env}
    assert env["LC_SERVER"] == "http://127.0.0.1:9100"
    assert env["BIG_MODEL_IP"] == "127.0.0.1"
    # Host networking, as upstream: the LC on the node's loopback, the cloud worker on its node.
    for pod in pods().values():
        assert pod.spec.host_network is True
        assert pod.spec.dns_policy == "ClusterFirstWithHostNet"
    # No LC ran them: the edge-process backend is off.
    assert pods_cluster.stack.lcs["edge0"].runtime.statuses() == []

    # The cloud node's InternalIP is where the edge worker finds the cloud worker.
    address = {"status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.10"}]}}
    core.patch_node_status("cloud0", address)

    def big_model_ip() -> str | None:
        edge = pods().get("svc-edge")
        env = {e.name: e.value for e in edge.spec.containers[0].env} if edge else {}
        return env.get("BIG_MODEL_IP")

    wait_for(lambda: big_model_ip() == "192.0.2.10", 30, "edge pod re-planned on the node IP")
    wait_for(lambda: set(pods()) == {"svc-edge", "svc-cloud"}, 30, "both pods back")

    for name in ("svc-edge", "svc-cloud"):  # what a kubelet would report
        core.patch_namespaced_pod_status(name, "default", {"status": {"phase": "Running"}})
    wait_for(
        lambda: pods_cluster.status("jointinferenceservices", "svc").get("active") == 2,
        30,
        "status counts the running pods",
    )

    # Reports: the test plays the worker Pod, with the token the GM put into its environment.
    edge0 = pods_cluster.stack.lcs["edge0"]
    token, cloud_token = (_env(pods()[n])[WORKER_TOKEN_ENV] for n in ("svc-edge", "svc-cloud"))
    assert token != cloud_token
    wait_for(lambda: _report(edge0, "svc-edge", 5, token)[0] == 200, 30, "edge0's LC takes it")
    wait_for(lambda: status_metrics(pods_cluster, "svc").get("inferenceNumber") == "5", 30, "5")
    before = _counted(edge0)
    # A wrong token (here another worker's): refused, naming why.
    status, answer = _report(edge0, "svc-edge", 999, cloud_token)
    assert (status, answer["error"]) == (403, "bad_worker_token")
    assert "svc-edge" in answer["message"] and "bad_worker_token" in answer["message"]
    # A worker of another node, with its own token: edge0's LC does not speak for cloud0.
    status, answer = _report(edge0, "svc-cloud", 998, cloud_token)
    assert (status, answer["error"]) == (403, "unknown_worker")
    # Refused reports were not forwarded; the next good one lands after them.
    assert _report(edge0, "svc-edge", 6, token)[0] == 200
    wait_for(lambda: status_metrics(pods_cluster, "svc").get("inferenceNumber") == "6", 30, "6")
    assert _counted(edge0) == {
        "received": before["received"] + 1,
        "bad_worker_token": before["bad_worker_token"] + 1,
        "unknown_worker": before["unknown_worker"] + 1,
    }
    assert status_metrics(pods_cluster, "svc")["inferenceNumber"] == "6"
    # The GM, too, takes from edge0 only what it placed there: edge0 forging cloud0's worker.
    gm = pods_cluster.stack.gm
    assert gm is not None
    refused = gm.metrics.refused.labels(node="edge0", reason="worker-not-on-node")
    forged = {"type": "worker", "worker": "svc-cloud", "output": {"taskInfo": {"x": 1}}}
    edge0.bus.publish(
        up_topic("edge0", "JointInferenceService", "default", "svc"),
        Envelope(seq=1, node="edge0", payload=forged),
    )
    wait_for(lambda: refused._value.get() == 1, 30, "the GM refuses edge0 speaking for cloud0")
    assert status_metrics(pods_cluster, "svc")["inferenceNumber"] == "6"

    pods_cluster.kubectl("delete", "jointinferenceservices.sedna.io", "svc")
    wait_for(lambda: pods() == {}, 30, "pods deleted with their service")
    # The GM cleared the worker from edge0's LC: its token is worth nothing now.
    wait_for(
        lambda: _report(edge0, "svc-edge", 7, token)[1].get("error") == "unknown_worker",
        30,
        "edge0's LC forgets the worker",
    )
    # Everything the GM asked of the API server here is granted by deploy/cluster's RBAC.
    assert ungranted(pods_cluster, audit_log) == []
