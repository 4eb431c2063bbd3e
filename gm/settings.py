"""GlobalManager settings, built once from command-line flags with environment fallbacks."""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError


class InvalidSettings(ValueError):
    """GM settings (flags or environment) that fail validation."""


# field name -> (flag, environment variable, help)
SOURCES: dict[str, tuple[str, str, str]] = {
    "kubeconfig": ("--kubeconfig", "SEDNA_KUBECONFIG", "kubeconfig file (default: in-cluster)"),
    "mqtt_url": ("--mqtt-url", "SEDNA_MQTT_URL", "broker, mqtt://host:port"),
    "mqtt_username": ("--mqtt-username", "SEDNA_MQTT_USERNAME", "broker user"),
    "mqtt_password": ("--mqtt-password", "SEDNA_MQTT_PASSWORD", "broker password"),
    "redis_url": ("--redis-url", "SEDNA_REDIS_URL", "Redis for the GM cache"),
    "http_port": ("--http-port", "SEDNA_GM_PORT", "/metrics and /healthz port, 0 = any"),
    "backend": ("--backend", "SEDNA_GM_BACKEND", "worker backend: edge-process or pods"),
    "default_node_address": (
        "--default-node-address",
        "SEDNA_DEFAULT_NODE_ADDRESS",
        "address of nodes whose Node object has none (sedna up: 127.0.0.1)",
    ),
    "token_secret": (
        "--token-secret",
        "SEDNA_GM_TOKEN_SECRET",
        "secret from which each job's weight-exchange token is derived",
    ),
    "identity": ("--identity", "SEDNA_GM_IDENTITY", "leader election identity"),
    "lease_namespace": ("--lease-namespace", "SEDNA_GM_LEASE_NAMESPACE", "namespace of the Lease"),
    "workers": ("--workers", "SEDNA_GM_WORKERS", "reconcile threads"),
}


class GMSettings(BaseModel):
    """Everything the GM needs to start; passed down, never read from the environment again."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kubeconfig: str | None = None
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    http_port: int = Field(default=9090, ge=0, le=65535)
    backend: Literal["edge-process", "pods"] = "edge-process"
    default_node_address: str | None = None
    token_secret: SecretStr = SecretStr("")
    identity: str = Field(default_factory=socket.gethostname, pattern=r"^[A-Za-z0-9._-]+$")
    lease_namespace: str = "default"
    lease_name: str = "sedna-gm"
    lease_duration: float = Field(default=15.0, gt=1)
    workers: int = Field(default=4, ge=1, le=64)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the GM's flags to ``parser``; each falls back to its environment variable."""
    group = parser.add_argument_group("global manager")
    for field, (flag, var, text) in SOURCES.items():
        group.add_argument(flag, dest=f"gm_{field}", help=f"{text} (env {var})")


def from_args(ns: argparse.Namespace, environ: Mapping[str, str] | None = None) -> GMSettings:
    """Build settings from flags, then the environment, then defaults; clear errors otherwise."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field, (_flag, var, _text) in SOURCES.items():
        value = getattr(ns, f"gm_{field}", None)
        if value is None:
            value = env.get(var) or None
        if value is not None:
            values[field] = value
    return build(values)


def build(values: Mapping[str, Any]) -> GMSettings:
    """Validate settings given as field values; errors name the flag and variable."""
    try:
        return GMSettings.model_validate(dict(values))
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            field = str(err["loc"][0]) if err.get("loc") else ""
            flag, var, _ = SOURCES.get(field, (field, "", ""))
            shown = "***" if "password" in field or "secret" in field else repr(err.get("input"))
            problems.append(f"{flag} (or {var}): {err['msg']} (got {shown})")
        raise InvalidSettings("invalid GM settings: " + "; ".join(problems)) from exc
