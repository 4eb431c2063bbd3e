"""The worker spec the process runtime runs: a pod template reduced to what a process needs."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lc.errors import InvalidWorkerSpec, describe_validation_error

DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

WorkerName = Annotated[str, Field(pattern=DNS1123_SUBDOMAIN, max_length=253)]
Namespace = Annotated[str, Field(pattern=DNS1123_LABEL, max_length=63)]
RestartPolicy = Literal["Always", "OnFailure", "Never"]

# Interpreter names that mean "the Python of the image"; here that is the LC's own interpreter.
_PYTHON_NAMES = frozenset({"python", "python3"})


class EnvVar(BaseModel):
    """One ``env`` entry of a container; ``valueFrom`` cannot be resolved outside Kubernetes."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str = Field(min_length=1)
    value: str = ""
    value_from: dict[str, Any] | None = Field(default=None, alias="valueFrom")


class Container(BaseModel):
    """The fields of a container the process runtime uses; the image and the rest are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str | None = None
    image: str | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    env: list[EnvVar] = Field(default_factory=list)
    working_dir: str | None = Field(default=None, alias="workingDir")

    @model_validator(mode="after")
    def _needs_something_to_run(self) -> Container:
        if not self.command and not self.args:
            raise ValueError("a container needs a command or args to run")
        return self


class PodSpec(BaseModel):
    """The pod spec of a worker template."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    containers: list[Container] = Field(min_length=1)
    restart_policy: RestartPolicy = Field(default="Always", alias="restartPolicy")


class PodTemplate(BaseModel):
    """``template`` of a worker: metadata (labels) and the pod spec."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    metadata: dict[str, Any] | None = None
    spec: PodSpec


class OwnerReference(BaseModel):
    """The resource a worker belongs to."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    api_version: str | None = Field(default=None, alias="apiVersion")
    kind: str
    name: str
    uid: str | None = None


class WorkerSpec(BaseModel):
    """A worker to run on this node: its name, namespace, owner and pod template.

    Also accepts a Pod object (``metadata`` + ``spec``, owner in ``metadata.ownerReferences``),
    the form the GM's edge-process backend publishes.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: WorkerName
    namespace: Namespace = "default"
    owner: OwnerReference | None = None
    template: PodTemplate

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
    def container(self) -> Container:
        """The container that is run (the first one)."""
        return self.template.spec.containers[0]

    @property
    def restart_policy(self) -> RestartPolicy:
        """The pod's restart policy."""
        return self.template.spec.restart_policy

    @property
    def key(self) -> str:
        """``namespace/name``: the worker's identity on the node."""
        return f"{self.namespace}/{self.name}"

    def argv(self, python: str) -> list[str]:
        """The command line: ``command + args``; ``args`` alone run with ``python``.

        ``python`` also replaces a bare ``python``/``python3`` command, as the image's
        interpreter is the LC's interpreter here.
        """
        container = self.container
        if container.command:
            command = list(container.command)
            if command[0] in _PYTHON_NAMES:
                command[0] = python
            return command + list(container.args or [])
        return [python, *(container.args or [])]

    def template_env(self) -> dict[str, str]:
        """The container's ``env`` as a mapping (entries with ``valueFrom`` are left out)."""
        return {e.name: e.value for e in self.container.env if e.value_from is None}

    def unresolved_env(self) -> list[str]:
        """Names of ``env`` entries with ``valueFrom``, which a process runtime cannot resolve."""
        return [e.name for e in self.container.env if e.value_from is not None]

    def spec_hash(self, extra_env: Mapping[str, str] | None = None) -> str:
        """A digest of everything that decides how the worker runs; a change means a restart."""
        payload = {
            "spec": self.model_dump(mode="json", by_alias=True),
            "env": dict(sorted((extra_env or {}).items())),
        }
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:32]


def parse_worker_spec(data: WorkerSpec | Mapping[str, Any]) -> WorkerSpec:
    """Validate a worker spec, raising :class:`InvalidWorkerSpec` that names each bad field."""
    if isinstance(data, WorkerSpec):
        return data
    try:
        return WorkerSpec.model_validate(data)
    except ValidationError as exc:
        raise InvalidWorkerSpec(f"invalid worker spec: {describe_validation_error(exc)}") from exc
