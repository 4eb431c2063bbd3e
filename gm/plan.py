"""Which workers a resource needs: a pure function of the resource and what it refers to.

Every worker gets Sedna's environment variables (see ARCHITECTURE.md, "Worker environment") on
top of its template's own ``env``; the LC adds ``LC_SERVER``, which only it knows.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

from apis import (
    FederatedLearningJob,
    IncrementalLearningJob,
    JointInferenceService,
    LifelongLearningJob,
    Resource,
)
from apis.base import OwnerReference, PodTemplateSpec
from apis.kinds import HardExampleMining


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
            "sedna.io/worker-role": self.role,
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
    node_addresses: Mapping[str, str] = Field(default_factory=dict)
    default_node_address: str | None = None
    ports: Mapping[str, int] = Field(default_factory=dict)  # role -> allocated port
    job_token: str = ""

    def node_address(self, node: str) -> str:
        """Where workers on ``node`` can be reached."""
        address = self.node_addresses.get(node) or self.default_node_address
        if not address:
            raise PlanError(f"node {node!r} has no InternalIP address")
        return address


def _need(mapping: Mapping[str, Any], key: str, what: str) -> Any:
    try:
        return mapping[key]
    except KeyError:
        raise PlanError(f"{what} {key!r} not found") from None


def _node_of(template: PodTemplateSpec, where: str) -> str:
    node = template.spec.node_name
    if not node:
        raise PlanError(f"{where}.template.spec.nodeName: Required value")
    return node


def _namespace(resource: Resource) -> str:
    return resource.metadata.namespace or "default"


def _base_env(resource: Resource, worker: str, node: str) -> dict[str, str]:
    name = resource.metadata.name
    return {
        "NAMESPACE": _namespace(resource),
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


def _template(template: PodTemplateSpec) -> dict[str, Any]:
    return template.model_dump(mode="json", by_alias=True, exclude_none=True)


def plan_joint_inference(
    svc: JointInferenceService, owner: OwnerReference, ctx: PlanContext
) -> list[DesiredWorker]:
    """A cloud worker serving the big model and an edge worker mining hard examples."""
    edge, cloud = svc.spec.edge_worker, svc.spec.cloud_worker
    cloud_node = _node_of(cloud.template, "spec.cloudWorker")
    edge_node = _node_of(edge.template, "spec.edgeWorker")
    port = str(_need(ctx.ports, "cloud", "port for"))
    name = svc.metadata.name
    cloud_env = {
        **_base_env(svc, f"{name}-cloud", cloud_node),
        "MODEL_URL": _need(ctx.model_urls, cloud.model.name, "model"),
        "BIG_MODEL_BIND_PORT": port,
    }
    edge_env = {
        **_base_env(svc, f"{name}-edge", edge_node),
        "MODEL_URL": _need(ctx.model_urls, edge.model.name, "model"),
        "BIG_MODEL_IP": ctx.node_address(cloud_node),
        "BIG_MODEL_PORT": port,
        **hem_env(edge.hard_example_mining),
    }
    return [
        DesiredWorker(
            name=f"{name}-cloud",
            namespace=_namespace(svc),
            node=cloud_node,
            role="cloud",
            owner=owner,
            template=_template(cloud.template),
            env=cloud_env,
            restart_policy="Always",
        ),
        DesiredWorker(
            name=f"{name}-edge",
            namespace=_namespace(svc),
            node=edge_node,
            role="edge",
            owner=owner,
            template=_template(edge.template),
            env=edge_env,
            restart_policy="Always",
        ),
    ]


def _pretrained_env(job: FederatedLearningJob, ctx: PlanContext) -> dict[str, str]:
    """``BASE_MODEL_URL``: the ``pretrainedModel`` the first round starts from, if any."""
    pretrained = job.spec.pretrained_model
    if pretrained is None:
        return {}
    return {"BASE_MODEL_URL": _need(ctx.model_urls, pretrained.name, "model")}


def plan_federated_learning(
    job: FederatedLearningJob, owner: OwnerReference, ctx: PlanContext
) -> list[DesiredWorker]:
    """One aggregation worker and one training worker per entry of ``trainingWorkers``."""
    name = job.metadata.name
    agg = job.spec.aggregation_worker
    agg_node = _node_of(agg.template, "spec.aggregationWorker")
    port = str(_need(ctx.ports, "aggregation", "port for"))
    participants = str(len(job.spec.training_workers))
    common = {"PARTICIPANTS_COUNT": participants, "SEDNA_JOB_TOKEN": ctx.job_token}
    workers = [
        DesiredWorker(
            name=f"{name}-aggregation",
            namespace=_namespace(job),
            node=agg_node,
            role="aggregation",
            owner=owner,
            template=_template(agg.template),
            env={
                **_base_env(job, f"{name}-aggregation", agg_node),
                **common,
                "AGG_BIND_PORT": port,
                "MODEL_URL": _need(ctx.model_urls, agg.model.name, "model"),
                **_pretrained_env(job, ctx),
            },
        )
    ]
    agg_address = ctx.node_address(agg_node)
    for index, trainer in enumerate(job.spec.training_workers):
        where = f"spec.trainingWorkers[{index}]"
        worker = f"{name}-training-{index}"
        node = _node_of(trainer.template, where)
        workers.append(
            DesiredWorker(
                name=worker,
                namespace=_namespace(job),
                node=node,
                role="training",
                owner=owner,
                template=_template(trainer.template),
                env={
                    **_base_env(job, worker, node),
                    **common,
                    "AGG_IP": agg_address,
                    "AGG_PORT": port,
                    "TRAIN_DATASET_URL": _need(ctx.dataset_urls, trainer.dataset.name, "dataset"),
                },
            )
        )
    return workers


def plan_workers(
    resource: Resource, owner: OwnerReference, ctx: PlanContext
) -> list[DesiredWorker]:
    """The workers ``resource`` (canonical form) needs now."""
    if isinstance(resource, JointInferenceService):
        return plan_joint_inference(resource, owner, ctx)
    if isinstance(resource, FederatedLearningJob):
        return plan_federated_learning(resource, owner, ctx)
    if isinstance(resource, IncrementalLearningJob | LifelongLearningJob):
        # Staged jobs start their workers stage by stage (trigger evaluation); not yet planned.
        return []
    return []


def ports_needed(resource: Resource) -> tuple[str, ...]:
    """The roles of ``resource`` that listen on a port the GM must allocate."""
    if isinstance(resource, JointInferenceService):
        return ("cloud",)
    if isinstance(resource, FederatedLearningJob):
        return ("aggregation",)
    return ()


def allocate_port(used: set[int], seed: str, low: int = 20000, high: int = 29999) -> int:
    """A port in ``[low, high]`` not in ``used``, starting from a stable hash of ``seed``."""
    span = high - low + 1
    start = zlib.crc32(seed.encode()) % span
    for offset in range(span):
        port = low + (start + offset) % span
        if port not in used:
            return port
    raise PlanError(f"no free port left in {low}-{high}")
