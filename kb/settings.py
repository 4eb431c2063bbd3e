"""Knowledge base settings: flags with environment fallbacks, validated once at start-up."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

DEFAULT_PORT = 9020  # upstream's kb.sedna:9020


class InvalidKBSettings(ValueError):
    """Knowledge base settings (flags or environment) that fail validation."""


# field -> (flag, environment variable, help)
SOURCES: dict[str, tuple[str, str, str]] = {
    "host": ("--host", "SEDNA_KB_HOST", "address to listen on (default 127.0.0.1)"),
    "port": ("--port", "SEDNA_KB_PORT", f"port, 0 = any free (default {DEFAULT_PORT})"),
    "data_dir": ("--data-dir", "SEDNA_KB_DATA_DIR", "directory of kb.sqlite3 and uploaded files"),
    "node_name": ("--node-name", "SEDNA_KB_NODE", "node the knowledge base runs on (/metrics)"),
}


class KBSettings(BaseModel):
    """Where the knowledge base listens and keeps its data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    data_dir: Path = Path("kb-data")
    node_name: str = "cloud"
    #: Largest request body (index documents and uploaded files), bytes.
    max_body: int = Field(default=256 << 20, gt=0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the knowledge base's flags; each falls back to its environment variable."""
    for field, (flag, var, text) in SOURCES.items():
        parser.add_argument(flag, dest=f"kb_{field}", help=f"{text} (env {var})")


def from_args(ns: argparse.Namespace, environ: Mapping[str, str] | None = None) -> KBSettings:
    """Settings from flags, then the environment, then defaults."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field, (_flag, var, _text) in SOURCES.items():
        value = getattr(ns, f"kb_{field}", None) or env.get(var) or None
        if value is not None:
            values[field] = value
    try:
        return KBSettings.model_validate(values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            flag, var, _ = SOURCES.get(str(err["loc"][0]), ("?", "?", ""))
            problems.append(f"{flag} (or {var}): {err['msg']} (got {err.get('input')!r})")
        raise InvalidKBSettings("invalid knowledge base settings: " + "; ".join(problems)) from exc
