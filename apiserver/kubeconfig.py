"""Writing a kubeconfig that lets plain `kubectl --kubeconfig F` reach the server."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import yaml
from pydantic import BaseModel

CONTEXT_NAME = "sedna"


class KubeconfigSettings(BaseModel):
    """What goes into the kubeconfig."""

    server: str
    ca_pem: bytes
    token: str
    namespace: str = "default"
    name: str = CONTEXT_NAME


def render_kubeconfig(settings: KubeconfigSettings) -> str:
    """The kubeconfig YAML: one cluster (CA inline), one token user, one current context."""
    name = settings.name
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {
                    "server": settings.server,
                    "certificate-authority-data": base64.b64encode(settings.ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": f"{name}-admin", "user": {"token": settings.token}}],
        "contexts": [
            {
                "name": name,
                "context": {
                    "cluster": name,
                    "user": f"{name}-admin",
                    "namespace": settings.namespace,
                },
            }
        ],
        "current-context": name,
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False)


def write_kubeconfig(path: Path, settings: KubeconfigSettings) -> None:
    """Write the kubeconfig atomically, readable by its owner only (it holds the token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(render_kubeconfig(settings))
    os.replace(tmp, path)
