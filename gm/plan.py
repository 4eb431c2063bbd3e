"""What planning workers is made of: the desired worker, the planning context, shared helpers.

Each job kind plans its own workers (``gm.kinds``); every worker gets Sedna's environment
variables (see ARCHITECTURE.md, "Worker environment") on top of its template's own ``env``; the
LC adds ``LC_SERVER``, which only it knows.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

from apis import HardExampleMining, OwnerReference, PodTemplateSpec, Resource

#: The label that names a worker's role in its job, on every worker Pod.
ROLE_LABEL = "sedna.io/worker-role"


class PlanError(ValueError):
    """A resource whose workers cannot be planned yet (missing model, dataset, node address)."""


class DesiredWorker(BaseModel):
    """One worker process the control plane must keep running on a node."""

    name: str
    namespace: str
    node: str
    role: str
    owner: OwnerReference
    template: dict[str, Any]
    env: dict[str, str] = Field(default_factory=dict)
    restart_policy: str = "OnFailure"

    def pod(self) -> dict[str, Any]:
        """The worker as a Pod object: template spec plus the environment, owned by its job."""
        spec = json.loads(json.dumps(self.template.get("spec", {})))
        spec["nodeName"] = self.node
        spec.setdefault("restartPolicy", self.restart_policy)
        containers = spec.get("containers") or [{}]
        first = containers[0]
        own_env = [e for e in first.get("env") or [] if e.get("name") not in self.env]
        first["env"] = own_env + [{"name": k, "value": v} for k, v in sorted(self.env.items())]
        template_meta = self.template.get("metadata") or {}
        labels = {
            **(template_meta.get("labels") or {}),
            "sedna.io/owner-kind": self.owner.kind,
            "sedna.io/owner-name": self.owner.name,
            ROLE_LABEL: self.role,
        }
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": labels,
                "ownerReferences": [
                    self.owner.model_copy(
                        update={"controller": True, "block_owner_deletion": True}
                    ).to_api()
                ],
            },
            "spec": spec,
        }


class PlanContext(BaseModel):
    """What planning needs to know besides the resource itself."""

    model_urls: Mapping[str, str] = Field(default_factory=dict)  # Model name -> spec.url
    dataset_urls: Mapping[str, str] = Field(default_factory=dict)  # Dataset name -> spec.url
    dataset_nodes: Mapping[str, str] = Field(default_factory=dict)  # Dataset name -> nodeName
    node_addresses: Mapping[str, str] = Field(default_factory=dict)
    default_node_address: str | None = None
    ports: Mapping[str, int] = Field(default_factory=dict)  # role -> allocated port
    job_token: str = ""
    kb_server: str | None = None  # the knowledge base lifelong learning workers use

    def node_address(self, node: str) -> str:
        """Where workers on ``node`` can be reached."""
        address = self.node_addresses.get(node) or self.default_node_address
        if not address:
            raise PlanError(f"node {node!r} has no InternalIP address")
        return address


def need(mapping: Mapping[str, Any], key: str, what: str) -> Any:
    """``mapping[key]``, or a :class:`PlanError` saying which ``what`` is missing."""
    try:
        return mapping[key]
    except KeyError:
        raise PlanError(f"{what} {key!r} not found") from None


def node_of(template: PodTemplateSpec, where: str) -> str:
    """The node a worker template names (``<where>.template.spec.nodeName``), required."""
    node = template.spec.node_name
    if not node:
        raise PlanError(f"{where}.template.spec.nodeName: Required value")
    return node


def namespace(resource: Resource) -> str:
    """The resource's namespace (``default`` when unset)."""
    return resource.metadata.namespace or "default"


def base_env(resource: Resource, worker: str, node: str) -> dict[str, str]:
    """The variables every worker gets: namespace, node, worker and job names."""
    name = resource.metadata.name
    return {
        "NAMESPACE": namespace(resource),
        "NODE_NAME": node,
        "WORKER_NAME": worker,
        "JOB_NAME": name,
        "SERVICE_NAME": name,
    }


def hem_env(mining: HardExampleMining | None) -> dict[str, str]:
    """``HEM_NAME`` and ``HEM_PARAMETERS`` (JSON ``[{"key", "value"}]``) for a mining config."""
    if mining is None:
        return {}
    params = [{"key": p.key, "value": p.value} for p in mining.parameters or []]
    return {"HEM_NAME": mining.name, "HEM_PARAMETERS": json.dumps(params)}


def template_dict(template: PodTemplateSpec) -> dict[str, Any]:
    """A pod template as the JSON the API serves."""
    return template.model_dump(mode="json", by_alias=True, exclude_none=True)


def allocate_port(used: set[int], seed: str, low: int = 20000, high: int = 29999) -> int:
    """A port in ``[low, high]`` not in ``used``, starting from a stable hash of ``seed``."""
    span = high - low + 1
    start = zlib.crc32(seed.encode()) % span
    for offset in range(span):
        port = low + (start + offset) % span
        if port not in used:
            return port
    raise PlanError(f"no free port left in {low}-{high}")


def desired_worker(
    resource: Resource,
    owner: OwnerReference,
    *,
    role: str,
    name: str,
    node: str,
    template: PodTemplateSpec,
    env: dict[str, str],
    restart_policy: str = "OnFailure",
) -> DesiredWorker:
    """A worker of ``resource`` with the base environment under its own ``env``."""
    return DesiredWorker(
        name=name,
        namespace=namespace(resource),
        node=node,
        role=role,
        owner=owner,
        template=template_dict(template),
        env={**base_env(resource, name, node), **env},
        restart_policy=restart_policy,
    )
