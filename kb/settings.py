"""Knowledge base settings: flags with environment fallbacks, validated once at start-up
(the one mechanism of every component, ``apis.settings``)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from apis import ComponentSettings, InvalidSettings, Source

DEFAULT_PORT = 9020  # upstream's kb.sedna:9020

#: Kept for callers that name it; it is the one settings error of every component.
InvalidKBSettings = InvalidSettings

SOURCES: dict[str, Source] = {
    "host": Source("--host", "SEDNA_KB_HOST", "address to listen on"),
    "port": Source("--port", "SEDNA_KB_PORT", "port, 0 = any free"),
    "data_dir": Source("--data-dir", "SEDNA_KB_DATA_DIR", "directory of kb.sqlite3 and files"),
    "node_name": Source("--node-name", "SEDNA_KB_NODE", "node the knowledge base runs on"),
}


class KBSettings(ComponentSettings):
    """Where the knowledge base listens and keeps its data."""

    COMPONENT: ClassVar[str] = "knowledge base"
    SOURCES: ClassVar[Mapping[str, Source]] = SOURCES

    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    data_dir: Path = Path("kb-data")
    node_name: str = "cloud"
    #: Largest request body (index documents and uploaded files), bytes.
    max_body: int = Field(default=256 << 20, gt=0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the knowledge base's flags; each falls back to its environment variable."""
    KBSettings.add_arguments(parser)


def from_args(ns: argparse.Namespace, environ: Mapping[str, str] | None = None) -> KBSettings:
    """Settings from flags, then the environment, then defaults."""
    return KBSettings.from_args(ns, environ)
