"""deploy/cluster's RBAC grants the GM exactly what it calls: every API request the GM makes in
an end-to-end run of the pods backend (the cluster mode) is granted, and every grant is used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from apiserver.audit import RequestAttributes, read_log
from gm.app import USER_AGENT, api_client_for
from tests.e2e import Cluster, joint_inference, models, worker_template
from tests.services import wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
RBAC = ROOT / "deploy" / "cluster" / "rbac.yaml"
SAMPLES = ROOT / "deploy" / "samples"

#: (apiGroup, resource or resource/subresource, verb)
Grant = tuple[str, str, str]


def grants(rules: list[dict[str, Any]]) -> set[Grant]:
    """The (group, resource, verb) triples a list of RBAC rules grants (no wildcards allowed)."""
    found = set()
    for rule in rules:
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], f"wildcard in {field}: {rule}"
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                found.update((group, resource, verb) for verb in rule["verbs"])
    return found


def requested(request: RequestAttributes) -> Grant:
    """What a request needs granted."""
    resource = request.resource
    if request.subresource:
        resource += f"/{request.subresource}"
    return (request.api_group, resource, request.verb)


def rbac_documents() -> dict[str, dict[str, Any]]:
    """The objects of rbac.yaml by kind."""
    return {doc["kind"]: doc for doc in yaml.safe_load_all(RBAC.read_text())}


def _federated_job(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "sedna.io/v1alpha1",
        "kind": "FederatedLearningJob",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "aggregationWorker": {
                "model": {"name": "big-model"},
                "template": worker_template("cloud0", {}),
            },
            "trainingWorkers": [
                {"dataset": {"name": "counted"}, "template": worker_template("edge0", {})}
            ],
        },
    }


def _lifelong_job(name: str) -> dict[str, Any]:
    """A LifelongLearningJob on the incremental learning sample's workers."""
    il = yaml.safe_load((SAMPLES / "quickstart_incrementallearningjob.yaml").read_text())["spec"]
    return {
        "apiVersion": "sedna.io/v1alpha1",
        "kind": "LifelongLearningJob",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "dataset": il["dataset"],
            "trainSpec": {"template": il["trainSpec"]["template"]},
            "evalSpec": {"template": il["evalSpec"]["template"]},
            "deploySpec": {"template": il["deploySpec"]["template"]},
        },
    }


def _run_everything_the_gm_does(cluster: Cluster, tmp_path: Path) -> None:
    core = client.CoreV1Api(api_client_for(str(cluster.stack.kubeconfig)))
    index = tmp_path / "train.txt"
    index.write_text("a.jpg 0\nb.jpg 1\n")
    dataset = {
        "apiVersion": "sedna.io/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": "counted", "namespace": "default"},
        "spec": {"url": str(index), "format": "txt", "nodeName": "edge0"},
    }
    cluster.kubectl("apply", "-f", str(SAMPLES))  # legacy kinds, IL job, Dataset, Models
    cluster.apply(
        [*models(), dataset, joint_inference("svc", {}), _federated_job("fed"), _lifelong_job("ll")]
    )

    def pods() -> list[str]:
        listed = core.list_namespaced_pod("default", label_selector="sedna.io/owner-name")
        return sorted(p.metadata.name for p in listed.items)

    wanted = ["fed-aggregation", "fed-training-0", "svc-cloud", "svc-edge"]
    wait_for(lambda: set(wanted) <= set(pods()), 30, f"the worker pods {wanted}")
    for name in pods():  # what a kubelet would report
        core.patch_namespaced_pod_status(name, "default", {"status": {"phase": "Running"}})
    wait_for(lambda: cluster.status("jointinferenceservices", "svc").get("active") == 2, 30, "JI")
    wait_for(lambda: cluster.status("federatedlearningjobs", "fed").get("active") == 2, 30, "FL")
    wait_for(lambda: cluster.status("datasets", "counted").get("numberOfSamples") == 2, 30, "ds")

    def edge_env() -> dict[str, str]:
        listed = core.list_namespaced_pod("default", field_selector="metadata.name=svc-edge")
        return {e.name: e.value for p in listed.items for e in p.spec.containers[0].env}

    cluster.apply(joint_inference("svc", {"CHANGED": "1"}))  # the GM replaces the edge pod
    wait_for(lambda: edge_env().get("CHANGED") == "1", 30, "the edge pod replaced")
    cluster.kubectl("delete", "jointinferenceservices.sedna.io", "svc")
    wait_for(lambda: not {"svc-cloud", "svc-edge"} & set(pods()), 30, "JI pods deleted")


def gm_requests(log: Path, lease_namespace: str) -> tuple[set[Grant], set[Grant]]:
    """What the GM's recorded requests need: (ClusterRole grants, Role grants)."""
    requests = [r for r in read_log(log) if r.user_agent == USER_AGENT]
    assert requests, f"no request of the GM recorded in {log}"
    cluster: set[Grant] = set()
    role: set[Grant] = set()
    for request in requests:
        need = requested(request)
        if need[:2] == ("coordination.k8s.io", "leases"):
            assert request.namespace == lease_namespace, request
            role.add(need)
        else:
            cluster.add(need)
    return cluster, role


def ungranted(cluster: Cluster, log: Path) -> list[Grant]:
    """The GM's recorded requests that deploy/cluster's RBAC does not grant."""
    used_cluster, used_role = gm_requests(log, cluster.stack.gm.settings.lease_namespace)
    docs = rbac_documents()
    missing = used_cluster - grants(docs["ClusterRole"]["rules"])
    return sorted(missing | (used_role - grants(docs["Role"]["rules"])))


def test_the_gm_cluster_role_grants_exactly_what_the_gm_calls(
    audit_log: Path, pods_cluster: Cluster, tmp_path: Path
) -> None:
    _run_everything_the_gm_does(pods_cluster, tmp_path)
    used_cluster, used_role = gm_requests(audit_log, pods_cluster.stack.gm.settings.lease_namespace)
    docs = rbac_documents()
    cluster_grants = grants(docs["ClusterRole"]["rules"])
    role_grants = grants(docs["Role"]["rules"])
    assert sorted(used_cluster - cluster_grants) == [], "called but not granted (ClusterRole)"
    assert sorted(used_role - role_grants) == [], "called but not granted (Role)"
    assert sorted(cluster_grants - used_cluster) == [], "granted but never called (ClusterRole)"
    assert sorted(role_grants - used_role) == [], "granted but never called (Role)"
