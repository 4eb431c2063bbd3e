"""Building blocks shared by every resource kind: metadata, conditions, pod templates."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """Base of every API structure: camelCase on the wire, snake_case in Python.

    Unknown fields are kept (``extra="allow"``) so an object read from the API and written back
    loses nothing; the API server, not the models, rejects unknown fields a user submits.
    """

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", ser_json_timedelta="float"
    )

    def to_api(self) -> dict[str, Any]:
        """The JSON-compatible dict the Kubernetes API expects (aliases, no unset fields)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class FreeForm(ApiModel):
    """An object whose schema is left open (``x-kubernetes-preserve-unknown-fields``)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})


class OwnerReference(ApiModel):
    """Points from a dependent object (a worker) to the resource that owns it.

    The GM always sets ``apiVersion`` and ``uid``; the LC needs only ``kind`` and ``name``, so a
    worker spec written by hand may leave the others out.
    """

    api_version: str | None = None
    kind: str
    name: str
    uid: str | None = None
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(ApiModel):
    """The subset of Kubernetes ``metadata`` the control plane reads."""

    name: str = ""
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: datetime | None = None
    deletion_timestamp: datetime | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    owner_references: list[OwnerReference] = Field(default_factory=list)
    finalizers: list[str] = Field(default_factory=list)


class KeyValue(ApiModel):
    """A ``{key, value}`` pair: worker parameters, hard example mining parameters, metrics."""

    key: str
    value: str


class ObjectRef(ApiModel):
    """A reference by name to another resource in the same namespace (Model, Dataset)."""

    name: str


class EnvVar(ApiModel):
    """A container environment variable (only literal values are used by the LC)."""

    name: str = Field(min_length=1)
    value: str | None = None

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})

    @property
    def value_from(self) -> Any:
        """``valueFrom`` as given (kept as an unknown field), or ``None``."""
        return (self.model_extra or {}).get("valueFrom")


class Container(ApiModel):
    """The container fields the edge process runtime uses; the rest is kept as given."""

    name: str | None = None
    image: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    env: list[EnvVar] | None = None
    working_dir: str | None = None

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})


RESTART_POLICIES = ("Always", "OnFailure", "Never")


class PodSpec(ApiModel):
    """A pod spec: where the worker runs and what it runs."""

    node_name: str | None = None
    containers: list[Container] = Field(min_length=1)
    restart_policy: str | None = None

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})

    @field_validator("restart_policy")
    @classmethod
    def _known_policy(cls, value: str | None) -> str | None:
        if value is not None and value not in RESTART_POLICIES:
            raise ValueError(f"must be one of {', '.join(RESTART_POLICIES)}, not {value!r}")
        return value


class PodTemplateSpec(ApiModel):
    """A pod template, as in Kubernetes workloads (``template.spec.containers[0]`` runs)."""

    metadata: FreeForm | None = None
    spec: PodSpec


class Condition(ApiModel):
    """One entry of a resource's append-only condition history."""

    type: str
    status: str = "True"
    last_heartbeat_time: datetime | None = None
    last_probe_time: datetime | None = None
    last_transition_time: datetime | None = None
    reason: str | None = None
    message: str | None = None


class Resource(ApiModel):
    """A namespaced custom resource: apiVersion, kind, metadata, spec, status."""

    #: Filled in by each kind (see ``apis.registry``).
    GROUP: ClassVar[str] = ""
    VERSION: ClassVar[str] = ""
    KIND: ClassVar[str] = ""
    #: The canonical kind a legacy kind converts to (``apis.to_canonical``); empty: itself.
    CANONICAL_KIND: ClassVar[str] = ""

    api_version: str = ""
    kind: str = ""
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    @property
    def key(self) -> str:
        """The work-queue key of this object: ``kind/namespace/name``."""
        return f"{self.KIND}/{self.metadata.namespace or 'default'}/{self.metadata.name}"
