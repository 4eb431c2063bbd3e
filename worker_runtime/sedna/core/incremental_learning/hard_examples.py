"""Hard examples saved for labelling: one file per sample and an index in the Dataset's format.

Upstream Sedna's library only returns the hard-example flag and leaves saving to each script.
Here the library saves each hard sample under ``HE_SAVED_URL`` as ``<prefix>-<n>.<ext>`` and
appends its file name to ``HE_SAVED_URL/index.txt`` (the txt Dataset format, one sample a line,
paths relative to the index). Labelling a line means appending `` <label>``; the labelled lines
appended to the Dataset index (with paths relative to it) start the next round.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

INDEX_NAME = "index.txt"


class HardExampleStore:
    """Saves hard samples and indexes them (thread-safe, appends only)."""

    def __init__(self, directory: str | Path, prefix: str | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix or f"he-{os.getpid()}"
        self.index = self.directory / INDEX_NAME
        self._lock = threading.Lock()
        self._count = 0

    @property
    def saved(self) -> int:
        """Hard examples saved by this store."""
        return self._count

    def save(self, sample: Any) -> Path:
        """Write ``sample`` (array, bytes or text) and index it; its path."""
        with self._lock:
            self._count += 1
            name = f"{self.prefix}-{self._count}"
            if isinstance(sample, bytes | bytearray):
                path = self.directory / f"{name}.bin"
                path.write_bytes(bytes(sample))
            elif isinstance(sample, str):
                path = self.directory / f"{name}.txt"
                path.write_text(sample, encoding="utf-8")
            else:
                path = self.directory / f"{name}.txt"
                np.savetxt(path, np.atleast_2d(np.asarray(sample, dtype=np.float64)))
            with self.index.open("a", encoding="utf-8") as handle:
                handle.write(f"{path.name}\n")
            return path
