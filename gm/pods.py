"""The ``pods`` worker backend: workers as Pods in the cluster (KubeEdge runs them at the edge).

Each worker becomes a Pod named after it, with ``nodeName`` set and an owner reference to its
resource; a Pod whose desired spec changed is replaced. Pod phases feed the resource's status
the way LC reports do for the ``edge-process`` backend.

Networking is upstream Sedna's: every worker Pod runs with host networking, as the LC does, so
``LC_SERVER`` (the node's loopback) reaches its own LC, and a cloud worker or aggregator listens
on its node's address at the port the GM allocated for it (unique across the cluster, so two
workers on one host never collide). Edge workers get that node's InternalIP as
``BIG_MODEL_IP``/``AGG_IP``: an address, not a name, so it needs no cluster DNS, which KubeEdge
edge nodes lack unless EdgeMesh runs (see docs/cluster.md).

Reports: the LC does not run these workers, so it cannot give them a token. Each Pod gets
``SEDNA_WORKER_TOKEN``, derived by the GM (``gm.ports.worker_token``), and the GM tells the
worker's node which workers run there, with the token's digest and owner
(:meth:`PodsBackend.reporting`, published on the node's ``down/reporters/...`` topics).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from apis import WORKER_TOKEN_ENV, OwnerReference, ReportingWorker, token_digest
from gm.plan import ROLE_LABEL, DesiredWorker
from gm.ports import worker_token

log = logging.getLogger(__name__)

SPEC_HASH_ANNOTATION = "sedna.io/spec-hash"
#: Where a worker finds its node's LC report server when the LC runs with host networking.
DEFAULT_LC_SERVER = "http://127.0.0.1:9100"


def owner_selector(kind: str, name: str) -> str:
    """The label selector of an owner's worker Pods."""
    return f"sedna.io/owner-kind={kind},sedna.io/owner-name={name}"


def desired_pod(
    worker: DesiredWorker, token: str, lc_server: str = DEFAULT_LC_SERVER
) -> dict[str, Any]:
    """The Pod for ``worker`` on its node's network, with its report token, annotated with the
    hash of its spec."""
    env = {"LC_SERVER": lc_server, WORKER_TOKEN_ENV: token, **worker.env}
    pod = worker.model_copy(update={"env": env}).pod()
    pod["spec"]["hostNetwork"] = True
    # Host-network Pods resolve cluster Services only with this policy (where cluster DNS runs).
    pod["spec"].setdefault("dnsPolicy", "ClusterFirstWithHostNet")
    digest = hashlib.sha256(json.dumps(pod["spec"], sort_keys=True).encode()).hexdigest()[:16]
    pod["metadata"]["annotations"] = {SPEC_HASH_ANNOTATION: digest}
    return pod


class PodsBackend:
    """Creates, replaces and deletes worker Pods so they match the plan."""

    def __init__(self, api_client: client.ApiClient, token_secret: str) -> None:
        self._core = client.CoreV1Api(api_client)
        self._secret = token_secret

    def token(self, worker: DesiredWorker) -> str:
        """The report token the GM gives ``worker``'s Pod."""
        return worker_token(self._secret, worker.owner.uid, worker.namespace, worker.name)

    def reporting(self, worker: DesiredWorker) -> ReportingWorker:
        """What the LC of ``worker``'s node needs to take its reports: owner and token digest."""
        return ReportingWorker(
            name=worker.name,
            namespace=worker.namespace,
            owner=worker.owner,
            token_sha256=token_digest(self.token(worker)),
        )

    def sync(
        self, namespace: str, owner: OwnerReference, workers: list[DesiredWorker]
    ) -> list[dict[str, Any]]:
        """Make the owner's Pods in ``namespace`` match ``workers``; returns them as they are."""
        existing = {
            pod.metadata.name: pod
            for pod in self._core.list_namespaced_pod(
                namespace, label_selector=owner_selector(owner.kind, owner.name)
            ).items
        }
        wanted = {w.name: desired_pod(w, self.token(w)) for w in workers}
        for name, pod in existing.items():
            want = wanted.get(name)
            have_hash = (pod.metadata.annotations or {}).get(SPEC_HASH_ANNOTATION)
            if want is None or want["metadata"]["annotations"][SPEC_HASH_ANNOTATION] != have_hash:
                self._delete(namespace, name)
        result = []
        for name, pod in wanted.items():
            current = existing.get(name)
            if (
                current is not None
                and (current.metadata.annotations or {}).get(SPEC_HASH_ANNOTATION)
                == pod["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
            ):
                result.append(self._core.api_client.sanitize_for_serialization(current))
                continue
            try:
                created = self._core.create_namespaced_pod(namespace, pod)
            except ApiException as exc:
                if exc.status != 409:  # 409: the old one is still going away; next round
                    raise
                continue
            log.info("created worker pod", extra={"worker": name, "node": pod["spec"]["nodeName"]})
            result.append(self._core.api_client.sanitize_for_serialization(created))
        return result

    def remove(self, namespace: str, kind: str, name: str) -> None:
        """Delete every worker Pod of a resource (it was deleted)."""
        for pod in self._core.list_namespaced_pod(
            namespace, label_selector=owner_selector(kind, name)
        ).items:
            self._delete(namespace, pod.metadata.name)

    def _delete(self, namespace: str, name: str) -> None:
        try:
            self._core.delete_namespaced_pod(name, namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
        log.info("deleted worker pod", extra={"worker": name, "namespace": namespace})


def phases_from_pods(pods: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Worker status entries (name -> role, phase, node, restarts) from Pod objects."""
    entries = {}
    for pod in pods:
        status = pod.get("status") or {}
        restarts = sum(c.get("restartCount", 0) for c in status.get("containerStatuses") or [])
        labels = pod["metadata"].get("labels") or {}
        entries[pod["metadata"]["name"]] = {
            "name": pod["metadata"]["name"],
            "role": labels.get(ROLE_LABEL),
            "nodeName": (pod.get("spec") or {}).get("nodeName"),
            "phase": status.get("phase") or "Pending",
            "restartCount": restarts,
        }
    return entries
