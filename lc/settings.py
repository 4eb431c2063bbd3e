"""LocalController settings, built once from command-line flags with environment fallbacks."""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from apis import DNS1123_SUBDOMAIN, ComponentSettings, InvalidSettings, Source

__all__ = [
    "SOURCES",
    "InvalidSettings",
    "LCSettings",
    "add_arguments",
    "build",
    "default_data_dir",
    "from_args",
]

DEFAULT_REPORT_PORT = 9100
DEFAULT_LOG_PORT = 10350
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"

_REDIS_SCHEMES = ("redis", "rediss", "unix")
_MQTT_SCHEMES = ("mqtt", "mqtts", "tcp", "ssl", "ws", "wss")

SOURCES: dict[str, Source] = {
    "node": Source("--node", "SEDNA_NODE", "node name, DNS-1123", metavar="NAME"),
    "data_dir": Source(
        "--data-dir", "SEDNA_DATA_DIR", "logs and worker state (default ~/.sedna/lc/NODE)", "DIR"
    ),
    "report_port": Source(
        "--port", "SEDNA_LC_PORT", "worker report port on 127.0.0.1, 0 = any free port", "PORT"
    ),
    "log_port": Source(
        "--log-port",
        "SEDNA_LC_LOG_PORT",
        "port of the worker log endpoint the API server reads (like a kubelet's), 0 = any free",
        "PORT",
    ),
    "log_host": Source(
        "--log-address",
        "SEDNA_LC_LOG_ADDRESS",
        "address the log endpoint binds (the API server must reach it; default 127.0.0.1)",
        "ADDRESS",
    ),
    "log_token": Source(
        "--log-token",
        "SEDNA_LC_LOG_TOKEN",
        "token the API server shows to read this node's logs (prefer the variable); "
        "unset: no logs are served",
        "TOKEN",
        secret=True,
    ),
    "redis_url": Source("--redis-url", "SEDNA_REDIS_URL", "Redis for the LC's state", "URL"),
    "mqtt_url": Source("--mqtt-url", "SEDNA_MQTT_URL", "broker", "URL"),
    "mqtt_username": Source("--mqtt-username", "SEDNA_MQTT_USERNAME", "broker user", "USER"),
    "mqtt_password": Source(
        "--mqtt-password",
        "SEDNA_MQTT_PASSWORD",
        "broker password (prefer the variable)",
        "PASSWORD",
        secret=True,
    ),
    "worker_grace_period": Source(
        "--worker-grace-period",
        "SEDNA_LC_WORKER_GRACE_PERIOD",
        "seconds between SIGTERM and SIGKILL when a worker is stopped",
        "SECONDS",
    ),
    "dataset_poll_period": Source(
        "--dataset-poll-period",
        "SEDNA_LC_DATASET_POLL_PERIOD",
        "seconds between dataset index counts",
        "SECONDS",
    ),
}


def default_data_dir(node: str) -> Path:
    """Where an LC keeps logs and worker state when no data dir is given."""
    return Path.home() / ".sedna" / "lc" / node


class LCSettings(ComponentSettings):
    """Everything an LC needs to start; passed down, never read from the environment again."""

    COMPONENT: ClassVar[str] = "LC"
    SOURCES: ClassVar[Mapping[str, Source]] = SOURCES

    node: str
    data_dir: Path
    report_port: int = Field(default=DEFAULT_REPORT_PORT, ge=0, le=65535)
    log_port: int = Field(default=DEFAULT_LOG_PORT, ge=0, le=65535)
    log_host: str = "127.0.0.1"
    log_token: SecretStr | None = None
    redis_url: str = DEFAULT_REDIS_URL
    mqtt_url: str = DEFAULT_MQTT_URL
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    worker_grace_period: float = Field(default=30.0, gt=0)
    dataset_poll_period: float = Field(default=10.0, gt=0)

    @field_validator("node")
    @classmethod
    def _dns1123(cls, value: str) -> str:
        if len(value) > 253 or not re.match(DNS1123_SUBDOMAIN, value):
            raise ValueError(
                "must be a DNS-1123 name: lowercase letters, digits, '-' and '.', "
                "starting and ending with a letter or digit"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        return _check_url(value, _REDIS_SCHEMES)

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_scheme(cls, value: str) -> str:
        return _check_url(value, _MQTT_SCHEMES)

    @property
    def report_url(self) -> str:
        """``LC_SERVER`` for this LC's workers (meaningful once the port is fixed, not 0)."""
        return f"http://127.0.0.1:{self.report_port}"

    @classmethod
    def from_args(
        cls, ns: argparse.Namespace, environ: Mapping[str, str] | None = None
    ) -> LCSettings:
        """Settings from flags, then the environment, then defaults; ``--node`` is required
        and the data directory defaults to one per node."""
        values = cls.values_from(ns, environ)
        if "node" not in values:
            raise InvalidSettings("--node (or SEDNA_NODE) is required: the name of this node")
        values.setdefault("data_dir", default_data_dir(str(values["node"])))
        return cls.build(values)


def _check_url(value: str, schemes: tuple[str, ...]) -> str:
    parts = urlsplit(value)
    if parts.scheme not in schemes:
        raise ValueError(
            f"{value!r} must start with one of {', '.join(s + '://' for s in schemes)}"
        )
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError(f"{value!r} has no host")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise ValueError(f"{value!r} has an invalid port") from exc
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the LC's flags to ``parser``; each falls back to its environment variable."""
    LCSettings.add_arguments(parser)


def from_args(ns: argparse.Namespace, environ: Mapping[str, str] | None = None) -> LCSettings:
    """Build settings from parsed flags, then the environment, then defaults.

    Raises :class:`InvalidSettings` naming the flag and variable of each bad value.
    """
    return LCSettings.from_args(ns, environ)


def build(values: Mapping[str, Any]) -> LCSettings:
    """Validate settings given as field values, with errors that name flag and variable."""
    return LCSettings.build(values)
