"""Ports and tokens of jobs: stable across GM restarts without any store but the objects.

- Ports: a job whose workers listen (``JobPolicy.ports``) gets one port per role, chosen once
  from a hash of its uid among the ports no other job holds, and kept in its annotation
  ``sedna.io/ports`` (JSON, role -> port).
- Tokens: a job's weight-exchange token is an HMAC of its uid under the GM's secret, so every
  worker of the job gets the same one and nothing is stored. A worker's report token (the
  ``pods`` backend's, ``worker_token``) is an HMAC of its job's uid and its own name, likewise.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from typing import Any

from kubernetes import client

from apis import KindInfo
from gm.plan import allocate_port

PORTS_ANNOTATION = "sedna.io/ports"


def ports_of(obj: dict[str, Any]) -> dict[str, int]:
    """The ports recorded on ``obj`` (empty when none or unreadable)."""
    text = (obj["metadata"].get("annotations") or {}).get(PORTS_ANNOTATION, "{}")
    try:
        return {str(k): int(v) for k, v in json.loads(text).items()}
    except (ValueError, AttributeError, TypeError):
        return {}


def ensure_ports(
    custom: client.CustomObjectsApi,
    info: KindInfo,
    obj: dict[str, Any],
    roles: tuple[str, ...],
    others: Iterable[dict[str, Any]],
) -> tuple[dict[str, int], dict[str, Any]]:
    """The job's ports for ``roles``, allocating and recording missing ones; returns the ports
    and the object as it now is. ``others`` are every object that may hold ports."""
    ports = ports_of(obj)
    missing = [r for r in roles if r not in ports]
    if not missing:
        return ports, obj
    used = {port for other in others for port in ports_of(other).values()}
    for role in missing:
        ports[role] = allocate_port(used, f"{obj['metadata'].get('uid')}/{role}")
        used.add(ports[role])
    meta = obj["metadata"]
    patch = {
        "metadata": {
            "resourceVersion": meta["resourceVersion"],
            "annotations": {PORTS_ANNOTATION: json.dumps(ports)},
        }
    }
    updated = custom.patch_namespaced_custom_object(
        info.group, info.version, meta.get("namespace", "default"), info.plural,
        meta["name"], patch,
    )  # fmt: skip
    return ports, updated


def job_token(secret: str, uid: str | None) -> str:
    """The job's weight-exchange token: derived from its uid, so nothing is stored."""
    return hmac.new(secret.encode(), (uid or "").encode(), hashlib.sha256).hexdigest()[:32]


def worker_token(secret: str, owner_uid: str | None, namespace: str, name: str) -> str:
    """A worker's report token (``pods`` backend): derived, so nothing is stored, and another
    for every worker and every incarnation of its job."""
    message = f"worker/{owner_uid or ''}/{namespace}/{name}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]
