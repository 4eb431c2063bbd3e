"""LocalController settings, built once from command-line flags with environment fallbacks."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from apis.messages import DNS1123_SUBDOMAIN
from lc.errors import InvalidSettings, error_location

DEFAULT_REPORT_PORT = 9100
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"

_REDIS_SCHEMES = ("redis", "rediss", "unix")
_MQTT_SCHEMES = ("mqtt", "mqtts", "tcp", "ssl", "ws", "wss")

# field name -> (flag, environment variable): how each setting is named to the user.
SOURCES: dict[str, tuple[str, str]] = {
    "node": ("--node", "SEDNA_NODE"),
    "data_dir": ("--data-dir", "SEDNA_DATA_DIR"),
    "report_port": ("--port", "SEDNA_LC_PORT"),
    "redis_url": ("--redis-url", "SEDNA_REDIS_URL"),
    "mqtt_url": ("--mqtt-url", "SEDNA_MQTT_URL"),
    "mqtt_username": ("--mqtt-username", "SEDNA_MQTT_USERNAME"),
    "mqtt_password": ("--mqtt-password", "SEDNA_MQTT_PASSWORD"),
    "worker_grace_period": ("--worker-grace-period", "SEDNA_LC_WORKER_GRACE_PERIOD"),
    "dataset_poll_period": ("--dataset-poll-period", "SEDNA_LC_DATASET_POLL_PERIOD"),
}


def default_data_dir(node: str) -> Path:
    """Where an LC keeps logs and worker state when no data dir is given."""
    return Path.home() / ".sedna" / "lc" / node


class LCSettings(BaseModel):
    """Everything an LC needs to start; passed down, never read from the environment again."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    node: str
    data_dir: Path
    report_port: int = Field(default=DEFAULT_REPORT_PORT, ge=0, le=65535)
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
    group = parser.add_argument_group("local controller")
    group.add_argument("--node", metavar="NAME", help="node name, DNS-1123 (env SEDNA_NODE)")
    group.add_argument(
        "--data-dir",
        metavar="DIR",
        help="logs and worker state (env SEDNA_DATA_DIR; default ~/.sedna/lc/NODE)",
    )
    group.add_argument(
        "--port",
        dest="report_port",
        metavar="PORT",
        help=f"worker report port on 127.0.0.1, 0 = any free port "
        f"(env SEDNA_LC_PORT; default {DEFAULT_REPORT_PORT})",
    )
    group.add_argument(
        "--redis-url", metavar="URL", help=f"env SEDNA_REDIS_URL; default {DEFAULT_REDIS_URL}"
    )
    group.add_argument(
        "--mqtt-url", metavar="URL", help=f"env SEDNA_MQTT_URL; default {DEFAULT_MQTT_URL}"
    )
    group.add_argument("--mqtt-username", metavar="USER", help="env SEDNA_MQTT_USERNAME")
    group.add_argument(
        "--mqtt-password", metavar="PASSWORD", help="env SEDNA_MQTT_PASSWORD (prefer the variable)"
    )
    group.add_argument(
        "--worker-grace-period",
        metavar="SECONDS",
        help="seconds between SIGTERM and SIGKILL when a worker is stopped "
        "(env SEDNA_LC_WORKER_GRACE_PERIOD; default 30)",
    )
    group.add_argument(
        "--dataset-poll-period",
        metavar="SECONDS",
        help="seconds between dataset index counts (env SEDNA_LC_DATASET_POLL_PERIOD; default 10)",
    )


def from_args(ns: argparse.Namespace, environ: Mapping[str, str] | None = None) -> LCSettings:
    """Build settings from parsed flags, then the environment, then defaults.

    Raises :class:`InvalidSettings` naming the flag and variable of each bad value.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field, (_flag, var) in SOURCES.items():
        value = getattr(ns, field, None)
        if value is None:
            value = env.get(var) or None
        if value is not None:
            values[field] = value
    if "node" not in values:
        raise InvalidSettings("--node (or SEDNA_NODE) is required: the name of this node")
    values.setdefault("data_dir", default_data_dir(str(values["node"])))
    return build(values)


def build(values: Mapping[str, Any]) -> LCSettings:
    """Validate settings given as field values, with errors that name flag and variable."""
    try:
        return LCSettings.model_validate(dict(values))
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            loc = tuple(err.get("loc", ()))
            field = str(loc[0]) if loc else ""
            flag, var = SOURCES.get(field, (error_location(loc), ""))
            name = f"{flag} (or {var})" if var else flag
            given = err.get("input")
            shown = "***" if field == "mqtt_password" else repr(given)
            problems.append(f"{name}: {err.get('msg', 'invalid value')} (got {shown})")
        raise InvalidSettings("invalid LC settings: " + "; ".join(problems)) from exc
