"""Helpers for end-to-end tests: a whole ``sedna up`` stack in-process, driven with kubectl."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from apis import crd_manifests
from apiserver import ApiServer
from apiserver.audit import AUDIT_LOG_ENV
from gm.app import api_client_for
from lc.agent import LocalController
from lc.workertokens import TOKEN_HEADER
from sedna_cli.stack import Stack, StackOptions
from tests.apiserver_fixtures import Kubectl
from tests.services import wait_for

WORKERS = Path(__file__).parent / "workers"


class Cluster:
    """A running stack plus kubectl and the official client pointed at it."""

    def __init__(self, stack: Stack, cache_dir: Path) -> None:
        self.stack = stack
        self.cache_dir = cache_dir
        self.api = client.CustomObjectsApi(api_client_for(str(stack.kubeconfig)))

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        """Run kubectl against the stack; returns stdout (raises with stderr on failure)."""
        env = {**os.environ, "KUBECONFIG": str(self.stack.kubeconfig)}
        result = subprocess.run(
            ["kubectl", "--cache-dir", str(self.cache_dir), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result.stdout + (result.stderr if not check else "")

    def apply(self, manifest: dict[str, Any] | list[dict[str, Any]]) -> None:
        """``kubectl apply -f -`` of one or more objects."""
        items = manifest if isinstance(manifest, list) else [manifest]
        self.kubectl("apply", "-f", "-", stdin="---\n".join(yaml.safe_dump(i) for i in items))

    def get(self, plural: str, name: str, namespace: str = "default") -> dict[str, Any]:
        """A sedna.io object as the API has it."""
        return self.api.get_namespaced_custom_object(
            "sedna.io", "v1alpha1", namespace, plural, name
        )

    def status(self, plural: str, name: str, namespace: str = "default") -> dict[str, Any]:
        """A sedna.io object's status (empty until the GM writes one)."""
        return self.get(plural, name, namespace).get("status") or {}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A fresh stack with nodes cloud0 and edge0 (auth and ACLs on)."""
    stack = Stack(StackOptions(data_dir=tmp_path / "sedna", nodes=["cloud0", "edge0"]))
    stack.start()
    try:
        yield Cluster(stack, tmp_path / "kube-cache")
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def crds_kubectl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    """kubectl against an embedded API server serving the project's own CRDs."""
    server = ApiServer(tmp_path_factory.mktemp("apiserver"), crds=crd_manifests())
    server.start()
    kubeconfig = tmp_path_factory.mktemp("kube") / "config"
    server.write_kubeconfig(kubeconfig)
    try:
        yield Kubectl(kubeconfig, tmp_path_factory.mktemp("cache"))
    finally:
        server.stop()


@pytest.fixture
def audit_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where API servers started from now on log every request (``apiserver.audit``)."""
    log = tmp_path / "requests.jsonl"
    monkeypatch.setenv(AUDIT_LOG_ENV, str(log))
    return log


@pytest.fixture
def pods_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A fresh stack with the ``pods`` backend (the cluster mode), nodes cloud0 and edge0."""
    stack = Stack(
        StackOptions(data_dir=tmp_path / "sedna", nodes=["cloud0", "edge0"], backend="pods")
    )
    stack.start()
    try:
        yield Cluster(stack, tmp_path / "kube-cache")
    finally:
        stack.stop()


def worker_template(node: str, env: dict[str, str], script: str = "reporter.py") -> dict:
    """A pod template running one of the test worker scripts on ``node``."""
    return {
        "spec": {
            "nodeName": node,
            "containers": [
                {
                    "name": "worker",
                    "image": "python:3",
                    "command": [sys.executable, str(WORKERS / script)],
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                }
            ],
        }
    }


def models(namespace: str = "default") -> list[dict[str, Any]]:
    """Two Model objects for joint inference services."""
    return [
        {
            "apiVersion": "sedna.io/v1alpha1",
            "kind": "Model",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"url": f"/models/{name}.pkl", "format": "pkl"},
        }
        for name in ("small-model", "big-model")
    ]


def joint_inference(
    name: str, edge_env: dict[str, str], cloud_env: dict[str, str] | None = None
) -> dict[str, Any]:
    """A JointInferenceService whose workers are the reporter script."""
    return {
        "apiVersion": "sedna.io/v1alpha1",
        "kind": "JointInferenceService",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "edgeWorker": {
                "model": {"name": "small-model"},
                "hardExampleMining": {
                    "name": "IBT",
                    "parameters": [{"key": "threshold_img", "value": "0.9"}],
                },
                "template": worker_template("edge0", edge_env),
            },
            "cloudWorker": {
                "model": {"name": "big-model"},
                "template": worker_template("cloud0", cloud_env or {}),
            },
        },
    }


def run_joint_inference(cluster: Cluster, *names: str) -> None:
    """Apply the models and a JointInferenceService of idle reporters per name; wait until
    both workers of each run."""
    cluster.apply(models())
    cluster.apply([joint_inference(name, {}) for name in names])
    for name in names:
        wait_for(
            lambda name=name: cluster.status("jointinferenceservices", name).get("active") == 2,
            30,
            f"both workers of {name} running",
        )


def status_metrics(cluster: Cluster, name: str) -> dict[str, str]:
    """``status.metrics`` of a JointInferenceService as a dict."""
    found = cluster.status("jointinferenceservices", name).get("metrics") or []
    return {m["key"]: m["value"] for m in found}


def post_report(
    lc: LocalController, worker: str, body: dict[str, Any], token: str | None = None
) -> tuple[int, dict[str, Any]]:
    """POST a report as the worker would, with ``token`` (default: the one its LC gave it)."""
    if token is None:
        token = lc.tokens.token(body.get("namespace", "default"), worker)
    conn = http.client.HTTPConnection("127.0.0.1", lc.reports.port, timeout=10)
    try:
        conn.request(
            "POST",
            f"/sedna/workers/{worker}/info",
            body=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                TOKEN_HEADER: token,
            },
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()
