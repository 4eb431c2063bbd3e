"""Ops page settings: flags with environment fallbacks, validated once at start-up
(the one mechanism of every component, ``apis.settings``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from apis import ComponentSettings, InvalidSettings, Source

DEFAULT_PORT = 9300

#: Kept for callers that name it; it is the one settings error of every component.
InvalidOpsSettings = InvalidSettings

_TARGET_NAME = re.compile(r"^[a-z0-9]([a-z0-9./-]{0,126}[a-z0-9])?$")

SOURCES: dict[str, Source] = {
    "host": Source("--host", "SEDNA_OPS_HOST", "address to listen on"),
    "port": Source("--port", "SEDNA_OPS_PORT", "port, 0 = any free"),
    "kubeconfig": Source(
        "--kubeconfig", "SEDNA_OPS_KUBECONFIG", "kubeconfig of the API server (jobs, token)"
    ),
    "targets": Source(
        "--targets",
        "SEDNA_OPS_TARGETS",
        "metrics endpoints to read, NAME=URL,... (e.g. gm=http://127.0.0.1:9000/metrics)",
        "LIST",
    ),
    "token": Source(
        "--token",
        "SEDNA_OPS_TOKEN",
        "bearer token users log in with (default: the kubeconfig's token)",
        secret=True,
    ),
    "interval": Source(
        "--interval", "SEDNA_OPS_INTERVAL", "seconds between samples of the metrics", "SECONDS"
    ),
    "history": Source(
        "--history", "SEDNA_OPS_HISTORY", "samples of history kept per series in memory", "N"
    ),
}


class OpsSettings(ComponentSettings):
    """Where the ops page listens, what it reads, and the token it asks for."""

    COMPONENT: ClassVar[str] = "ops page"
    SOURCES: ClassVar[Mapping[str, Source]] = SOURCES

    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    kubeconfig: Path | None = None
    #: Metrics endpoint per component name, e.g. ``{"gm": "http://127.0.0.1:9000/metrics"}``.
    targets: dict[str, str] = Field(default_factory=dict)
    token: SecretStr | None = None
    interval: float = Field(default=5.0, gt=0, le=3600)
    history: int = Field(default=720, ge=2, le=100_000)

    @field_validator("targets", mode="before")
    @classmethod
    def _parse_targets(cls, value: Any) -> Any:
        """``NAME=URL,NAME=URL`` (the flag's form) or a mapping; each URL http(s)."""
        if isinstance(value, str):
            pairs = [p.strip() for p in value.split(",") if p.strip()]
            parsed: dict[str, str] = {}
            for pair in pairs:
                name, sep, url = pair.partition("=")
                if not sep:
                    raise ValueError(f"{pair!r} is not NAME=URL")
                parsed[name.strip()] = url.strip()
            value = parsed
        if isinstance(value, Mapping):
            for name, url in value.items():
                if not _TARGET_NAME.match(str(name)):
                    raise ValueError(f"target name {name!r}: lower case letters, digits, . / -")
                parts = urlsplit(str(url))
                if parts.scheme not in ("http", "https") or not parts.netloc:
                    raise ValueError(f"target {name}: {url!r} is not an http(s) URL")
        return value
