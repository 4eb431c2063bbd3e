"""The ``pods`` worker backend: workers become Pods for a kubelet (KubeEdge) to run."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from gm.app import api_client_for
from tests.e2e import Cluster, joint_inference, models
from tests.services import wait_for
from tests.test_cluster_rbac import ungranted

pytestmark = pytest.mark.slow


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
    pods_cluster.kubectl("delete", "jointinferenceservices.sedna.io", "svc")
    wait_for(lambda: pods() == {}, 30, "pods deleted with their service")
    # Everything the GM asked of the API server here is granted by deploy/cluster's RBAC.
    assert ungranted(pods_cluster, audit_log) == []
