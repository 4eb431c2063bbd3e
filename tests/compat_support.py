"""Shared pieces of the compatibility e2e tests: upstream-shaped scripts as pod templates."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).parent / "compat_scripts"


def container(script: Path, env: dict[str, str]) -> dict[str, Any]:
    """A container running ``script`` from its own directory, as upstream's images do."""
    return {
        "name": script.stem.replace("_", "-"),
        "image": "kubeedge/sedna-example",
        "command": [sys.executable, script.name],
        "workingDir": str(script.parent),
        "env": [{"name": k, "value": v} for k, v in env.items()],
    }


def model(name: str, url: Path, format: str = "pkl") -> dict[str, Any]:
    """A Model object at ``url``."""
    return {
        "apiVersion": "sedna.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"url": str(url), "format": format},
    }
