"""A knowledge base service on a free loopback port, its data in the test's directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kb import KBServer, KBSettings


@pytest.fixture
def kb_server(tmp_path: Path) -> Iterator[KBServer]:
    """A running knowledge base (``sedna kb``'s server, in this process)."""
    server = KBServer(KBSettings(port=0, data_dir=tmp_path / "kb"))
    server.start()
    yield server
    server.stop()
