"""What travels between workers, LCs and the GM: worker reports, worker pods, bus messages.

- :class:`WorkerReport`: the ``info`` body a worker POSTs to its LC (seed 001; upstream's
  ``LCReporter`` body with ``results``/``ownerInfo``). The worker library keeps its own copy
  (``sedna.common.report``, it must not import the control plane); ``tests/test_contracts.py``
  feeds both the same fixtures.
- :class:`WorkerPod`: a worker as the GM publishes it to the node that runs it (a Pod object).
- :class:`ReportingWorker`: a worker a kubelet runs on a node (the GM's ``pods`` backend), as
  the GM tells that node's LC to take its reports (owner and the digest of its report token).
- :class:`NodeSnapshot`: a node's whole desired state in one message (resources, workers,
  reporting workers), so an LC (re)connecting takes it in one pass.
- :data:`UpstreamMessage`: the payload of an upstream bus envelope, a :class:`WorkerMessage`, a
  :class:`DatasetMessage` or a staged job's :class:`apis.stages.StageMessage`, told apart by
  ``type``; :func:`parse_upstream` decodes it once. Each message names its ``subject`` (the
  worker; ``""`` for the object itself; ``stage:<Stage>``): the GM keeps the latest message per
  object and subject.

Field names follow the design documents' ``WorkerMessage`` (``phase``, ``status``,
``output{models, taskInfo, ownerInfo}``) of seeds 000 and 002.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AliasChoices,
    Discriminator,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)

from apis.base import ApiModel, OwnerReference, PodTemplateSpec
from apis.stages import StageMessage

DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

#: A worker or object name (DNS-1123 subdomain) and a namespace (DNS-1123 label).
ObjectName = Annotated[str, Field(pattern=DNS1123_SUBDOMAIN, max_length=253)]
Namespace = Annotated[str, Field(pattern=DNS1123_LABEL, max_length=63)]


def _one_metric_error(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except ValidationError:
        raise ValueError(
            f"a metric must be a number, a list of numbers or a string, not {value!r}"
        ) from None


#: A model metric: a number, a list of numbers (upstream's eval workers send
#: ``{"precision": [0.91, 0.88]}``) or a string (``"n/a"``). Anything else cannot be carried and
#: is refused with one error at the metric's name.
MetricValue = Annotated[
    StrictInt | StrictFloat | StrictStr | list[StrictInt | StrictFloat],
    WrapValidator(_one_metric_error),
]

REPORT_STATUSES = ("running", "completed", "failed")


# --- worker -> LC ------------------------------------------------------------------------------


class OutputModel(ApiModel):
    """A model a worker produced: where it is, its format and its metrics."""

    format: str | None = None
    url: str
    metrics: dict[str, MetricValue] | None = None

    @field_validator("metrics", mode="before")
    @classmethod
    def _metrics_from_pairs(cls, value: Any) -> Any:
        # Lists of {"key", "value"} pairs (the form of status.metrics) are accepted too.
        if isinstance(value, list):
            return {
                str(item.get("key")) if isinstance(item, Mapping) else str(index): (
                    item.get("value") if isinstance(item, Mapping) else item
                )
                for index, item in enumerate(value)
            }
        return value


class TaskInfo(ApiModel):
    """Progress of a task: inference counts (joint inference) or the round (federated).

    Known fields are typed; others pass through (``aggregationCount``, ``nodes``...).
    """

    inference_number: int | None = Field(default=None, ge=0)
    hard_example_number: int | None = Field(default=None, ge=0)
    upload_cloud_ratio: float | None = Field(default=None, ge=0, le=1)
    cloud_failures: int | None = Field(default=None, ge=0)
    current_round: int | None = Field(default=None, ge=0)
    start_time: str | None = None
    update_time: str | None = None


class WorkerReport(ApiModel):
    """The body of ``POST /sedna/workers/<worker>/info`` (legacy ``/neptune/...``).

    ``results`` (the name upstream Sedna's worker library uses) is accepted for ``models``;
    upstream's ``LCReporter`` sends its counters in ``ownerInfo``, ours in ``taskInfo``: both are
    carried and land in status alike.
    """

    name: ObjectName
    namespace: Namespace = "default"
    owner_name: ObjectName
    owner_kind: str = Field(min_length=1)
    kind: str | None = None
    status: str
    task_info: TaskInfo | None = None
    models: list[OutputModel] = Field(
        default_factory=list, validation_alias=AliasChoices("models", "results")
    )
    owner_info: dict[str, Any] | None = None

    @field_validator("status")
    @classmethod
    def _known_status(cls, value: str) -> str:
        lowered = value.strip().lower()
        if lowered not in REPORT_STATUSES:
            raise ValueError(f"must be one of {', '.join(REPORT_STATUSES)}, not {value!r}")
        return lowered

    @field_validator("models", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    def output(self) -> WorkerOutput:
        """What the report carries upstream (``output`` of a :class:`WorkerMessage`)."""
        return WorkerOutput(
            models=list(self.models) or None,
            task_info=self.task_info.to_api() if self.task_info else None,
            owner_info=self.owner_info,
        )


# --- GM -> LC ----------------------------------------------------------------------------------


class WorkerPod(ApiModel):
    """A worker to run on a node: name, namespace, owner and pod template.

    Also accepts a Pod object (``metadata`` + ``spec``, owner in ``metadata.ownerReferences``),
    the form the GM's edge-process backend publishes on ``.../down/workers/<ns>/<name>``.
    """

    name: ObjectName
    namespace: Namespace = "default"
    owner: OwnerReference | None = None
    template: PodTemplateSpec

    @model_validator(mode="before")
    @classmethod
    def _accept_pod_form(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or "template" in data or "spec" not in data:
            return data
        meta = data.get("metadata") or {}
        if not isinstance(meta, Mapping):
            return data
        owners = meta.get("ownerReferences") or []
        converted: dict[str, Any] = {
            "name": meta.get("name"),
            "namespace": meta.get("namespace") or "default",
            "template": {"metadata": {"labels": meta.get("labels") or {}}, "spec": data["spec"]},
        }
        if owners:
            converted["owner"] = owners[0]
        return converted

    @property
    def container(self) -> Any:
        """The container that is run (the first one)."""
        return self.template.spec.containers[0]

    @property
    def restart_policy(self) -> str:
        """The pod's restart policy (Kubernetes' default ``Always`` when unset)."""
        return self.template.spec.restart_policy or "Always"

    @property
    def key(self) -> str:
        """``namespace/name``: the worker's identity on the node."""
        return f"{self.namespace}/{self.name}"


#: Where a worker finds its report token, and the header it sends it in with every report.
WORKER_TOKEN_ENV = "SEDNA_WORKER_TOKEN"
WORKER_TOKEN_HEADER = "X-Sedna-Worker-Token"


def node_log_token(secret: str, node: str) -> str:
    """The token the API server shows a node's LC to read its workers' logs: derived from a
    secret only the API server (and whoever starts the LCs) holds, another for every node."""
    return hmac.new(secret.encode(), f"node-logs/{node}".encode(), hashlib.sha256).hexdigest()


def token_digest(token: str) -> str:
    """The SHA-256 (hex) of a worker's report token: enough to check it, useless to forge it."""
    return hashlib.sha256(token.encode()).hexdigest()


class ReportingWorker(ApiModel):
    """A worker a kubelet runs on a node (the ``pods`` backend) whose reports its LC takes.

    The GM publishes it on ``.../down/reporters/<namespace>/<name>`` of the worker's node. The LC
    accepts a report for ``name`` only with a token whose :func:`token_digest` is
    ``tokenSha256`` (the GM put the token into the Pod's environment) and forwards it to
    ``owner``, whatever the report's body names.
    """

    #: Its kind in a node's manifest.
    MANIFEST_KIND: ClassVar[str] = "ReportingWorker"

    name: ObjectName
    namespace: Namespace = "default"
    owner: OwnerReference
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @property
    def key(self) -> str:
        """``namespace/name``: the worker's identity on the node."""
        return f"{self.namespace}/{self.name}"

    def accepts(self, token: str | None) -> bool:
        """Whether ``token`` is this worker's (constant-time comparison of the digests)."""
        return token is not None and hmac.compare_digest(token_digest(token), self.token_sha256)


class SnapshotItem(ApiModel):
    """One object of a node's desired state: a resource (``kind`` its Kind), a worker the LC
    runs (``Pod``) or a worker a kubelet runs there (``ReportingWorker``), with the body the
    per-object topic carries."""

    kind: str = Field(pattern=r"^[A-Z][A-Za-z0-9]*$")
    namespace: Namespace
    name: ObjectName
    resource_version: str
    body: dict[str, Any]

    @model_validator(mode="after")
    def _body_is_the_item(self) -> SnapshotItem:
        if self.kind == ReportingWorker.MANIFEST_KIND:
            named = (self.body.get("namespace", "default"), self.body.get("name"))
        else:
            meta = self.body.get("metadata")
            if not isinstance(meta, dict):
                raise ValueError(f"body of {self.kind} {self.key} has no metadata object")
            named = (meta.get("namespace") or "default", meta.get("name"))
        if named != (self.namespace, self.name):
            raise ValueError(f"body of {self.kind} {self.key} names {named[0]}/{named[1]}")
        return self

    @property
    def key(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"


class NodeSnapshot(ApiModel):
    """The whole desired state of one node in one message (``.../down/snapshot``, retained).

    ``generation`` grows with every snapshot the GM sends (also across GM restarts); an LC
    takes a snapshot only if it is newer than the last one it took. Whatever the LC holds and
    the snapshot does not list is no longer wanted.
    """

    node: ObjectName
    generation: StrictInt = Field(ge=1)
    items: list[SnapshotItem]

    @model_validator(mode="after")
    def _one_item_per_object(self) -> NodeSnapshot:
        seen: set[tuple[str, str]] = set()
        for index, item in enumerate(self.items):
            if (item.kind, item.key) in seen:
                raise ValueError(f"items[{index}]: {item.kind} {item.key} is listed twice")
            seen.add((item.kind, item.key))
        return self


# --- LC -> GM ----------------------------------------------------------------------------------


class WorkerOutput(ApiModel):
    """What a worker produced: models, task progress, owner information (both free form)."""

    models: list[OutputModel] | None = None
    task_info: dict[str, Any] | None = None
    owner_info: dict[str, Any] | None = None

    def progress(self) -> dict[str, Any]:
        """``ownerInfo`` and ``taskInfo`` as one mapping (``taskInfo`` wins on a clash)."""
        return {**(self.owner_info or {}), **(self.task_info or {})}


WorkerPhase = Literal["Pending", "Running", "Succeeded", "Failed"]


class WorkerMessage(ApiModel):
    """One upstream message about a worker of a resource.

    ``phase`` comes from the LC's process runtime (the worker process's lifecycle);
    ``status`` and ``output`` from the worker's own reports.
    """

    type: Literal["worker"] = "worker"
    worker: str
    owner_api_version: str | None = Field(
        default=None, description="apiVersion of the owning resource (its group may be legacy)"
    )
    node: str | None = None
    phase: WorkerPhase | None = None
    exit_code: int | None = None
    restart_count: int | None = None
    status: str | None = None
    output: WorkerOutput | None = None
    time: datetime | None = None

    @property
    def subject(self) -> str:
        """What the message's latest value is about within its object: the worker."""
        return self.worker


class DatasetMessage(ApiModel):
    """The LC's count of a dataset's samples on its node."""

    type: Literal["dataset"] = "dataset"
    number_of_samples: int = Field(ge=0)
    message: str | None = None
    time: datetime | None = None

    @property
    def subject(self) -> str:
        """What the message's latest value is about within its object: the dataset itself."""
        return ""


def _message_type(value: Any) -> str:
    if isinstance(value, Mapping):
        return str(value.get("type", "worker"))
    return str(getattr(value, "type", "worker"))


UpstreamMessage = Annotated[
    Annotated[WorkerMessage, Tag("worker")]
    | Annotated[DatasetMessage, Tag("dataset")]
    | Annotated[StageMessage, Tag("stage")],
    Discriminator(_message_type),
]

_UPSTREAM: TypeAdapter[WorkerMessage | DatasetMessage | StageMessage] = TypeAdapter(UpstreamMessage)


def parse_upstream(payload: Any) -> WorkerMessage | DatasetMessage | StageMessage:
    """Decode an upstream payload once into its typed message (raises ``ValidationError``)."""
    return _UPSTREAM.validate_python(payload)
