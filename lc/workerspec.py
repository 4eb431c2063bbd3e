"""How the process runtime runs a worker pod (``apis.messages.WorkerPod``): argv, env, digest.

The model is the contract's; this module holds what only a process runtime needs: a container
must name something to run, ``python`` means the LC's own interpreter, ``valueFrom`` cannot be
resolved outside Kubernetes, and a digest of the spec decides when a worker is restarted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from apis import WorkerPod
from lc.errors import InvalidWorkerSpec, describe_validation_error

__all__ = [
    "argv",
    "parse_worker_spec",
    "spec_hash",
    "template_env",
    "unresolved_env",
]

# Interpreter names that mean "the Python of the image"; here that is the LC's own interpreter.
_PYTHON_NAMES = frozenset({"python", "python3"})


def parse_worker_spec(data: WorkerPod | Mapping[str, Any]) -> WorkerPod:
    """Validate a worker spec, raising :class:`InvalidWorkerSpec` that names each bad field."""
    if isinstance(data, WorkerPod):
        return data
    try:
        pod = WorkerPod.model_validate(data)
    except ValidationError as exc:
        raise InvalidWorkerSpec(f"invalid worker spec: {describe_validation_error(exc)}") from exc
    if not pod.container.command and not pod.container.args:
        raise InvalidWorkerSpec(
            "invalid worker spec: template.spec.containers[0]: "
            "a container needs a command or args to run"
        )
    return pod


def argv(pod: WorkerPod, python: str) -> list[str]:
    """The command line: ``command + args``; ``args`` alone run with ``python``.

    ``python`` also replaces a bare ``python``/``python3`` command, as the image's interpreter
    is the LC's interpreter here.
    """
    container = pod.container
    if container.command:
        command = list(container.command)
        if command[0] in _PYTHON_NAMES:
            command[0] = python
        return command + list(container.args or [])
    return [python, *(container.args or [])]


def template_env(pod: WorkerPod) -> dict[str, str]:
    """The container's ``env`` as a mapping (entries with ``valueFrom`` are left out)."""
    return {e.name: e.value or "" for e in pod.container.env or [] if e.value_from is None}


def unresolved_env(pod: WorkerPod) -> list[str]:
    """Names of ``env`` entries with ``valueFrom``, which a process runtime cannot resolve."""
    return [e.name for e in pod.container.env or [] if e.value_from is not None]


def spec_hash(pod: WorkerPod, extra_env: Mapping[str, str] | None = None) -> str:
    """A digest of everything that decides how the worker runs; a change means a restart."""
    payload = {"spec": pod.to_api(), "env": dict(sorted((extra_env or {}).items()))}
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:32]
