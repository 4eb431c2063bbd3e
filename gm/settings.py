"""GlobalManager settings, built once from command-line flags with environment fallbacks."""

from __future__ import annotations

import argparse
import socket
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr

from apis import ComponentSettings, InvalidSettings, Source

__all__ = ["SOURCES", "GMSettings", "InvalidSettings", "add_arguments", "build", "from_args"]

SOURCES: dict[str, Source] = {
    "kubeconfig": Source(
        "--kubeconfig", "SEDNA_KUBECONFIG", "kubeconfig file (default: in-cluster)"
    ),
    "mqtt_url": Source("--mqtt-url", "SEDNA_MQTT_URL", "broker, mqtt://host:port"),
    "mqtt_username": Source("--mqtt-username", "SEDNA_MQTT_USERNAME", "broker user"),
    "mqtt_password": Source(
        "--mqtt-password", "SEDNA_MQTT_PASSWORD", "broker password", secret=True
    ),
    "redis_url": Source("--redis-url", "SEDNA_REDIS_URL", "Redis for the GM cache"),
    "http_port": Source("--http-port", "SEDNA_GM_PORT", "/metrics and /healthz port, 0 = any"),
    "backend": Source("--backend", "SEDNA_GM_BACKEND", "worker backend: edge-process or pods"),
    "default_node_address": Source(
        "--default-node-address",
        "SEDNA_DEFAULT_NODE_ADDRESS",
        "address of nodes whose Node object has none (sedna up: 127.0.0.1)",
    ),
    "token_secret": Source(
        "--token-secret",
        "SEDNA_GM_TOKEN_SECRET",
        "secret from which each job's weight-exchange token is derived",
        secret=True,
    ),
    "identity": Source("--identity", "SEDNA_GM_IDENTITY", "leader election identity"),
    "lease_namespace": Source(
        "--lease-namespace", "SEDNA_GM_LEASE_NAMESPACE", "namespace of the Lease"
    ),
    "workers": Source("--workers", "SEDNA_GM_WORKERS", "reconcile threads"),
    "upstream_workers": Source(
        "--upstream-workers",
        "SEDNA_GM_UPSTREAM_WORKERS",
        "threads applying upstream message batches (each owns a share of the objects)",
    ),
    "upstream_batch": Source(
        "--upstream-batch", "SEDNA_GM_UPSTREAM_BATCH", "most upstream messages in one batch"
    ),
    "status_interval": Source(
        "--status-interval",
        "SEDNA_GM_STATUS_INTERVAL",
        "least seconds between two reconciles of one object for its upstream messages"
        " (messages arriving meanwhile are one later status write)",
    ),
    "kb_server": Source(
        "--kb-server",
        "SEDNA_KB_SERVER",
        "knowledge base URL given to lifelong learning workers as KB_SERVER",
    ),
}


class GMSettings(ComponentSettings):
    """Everything the GM needs to start; passed down, never read from the environment again."""

    COMPONENT: ClassVar[str] = "GM"
    SOURCES: ClassVar[Mapping[str, Source]] = SOURCES

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
    upstream_workers: int = Field(default=1, ge=1, le=16)
    upstream_batch: int = Field(default=500, ge=1, le=10000)
    status_interval: float = Field(default=0.05, ge=0, le=10)
    kb_server: str | None = Field(default=None, pattern=r"^https?://[^\s/]+(/\S*)?$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the GM's flags to ``parser``; each falls back to its environment variable."""
    GMSettings.add_arguments(parser)


def from_args(ns: argparse.Namespace, environ: Mapping[str, str] | None = None) -> GMSettings:
    """Build settings from flags, then the environment, then defaults; clear errors otherwise."""
    return GMSettings.from_args(ns, environ)


def build(values: Mapping[str, Any]) -> GMSettings:
    """Validate settings given as field values; errors name the flag and variable."""
    return GMSettings.build(values)
