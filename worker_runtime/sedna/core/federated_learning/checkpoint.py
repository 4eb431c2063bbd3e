"""Model files (npz) and round checkpoints, written atomically.

A checkpoint directory holds ``global_round_<r>.npz`` (the global model of round r, tensors by
name), ``state_round_<r>.npz`` (the aggregation rule's memory) and ``checkpoint.json`` naming
the latest round. Each file is written to a temporary name and renamed into place, so a crash
leaves either the previous checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sedna.common.errors import SednaError

LOG = logging.getLogger("sedna.federated_learning.checkpoint")

CHECKPOINT_FILE = "checkpoint.json"


class CheckpointError(SednaError):
    """A checkpoint or model file cannot be read."""


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through a temporary file in the same directory and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError):
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _write_npz(stream: IO[bytes], tensors: Iterable[tuple[str, np.ndarray]]) -> None:
    # Like numpy.savez, but any tensor name works as a key (savez reserves "file").
    with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, tensor in tensors:
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(tensor), allow_pickle=False)


def save_npz(path: Path, tensors: Iterable[tuple[str, np.ndarray]]) -> None:
    """Write named tensors to ``path`` (readable with ``numpy.load``), atomically."""
    atomic_write(path, lambda stream: _write_npz(stream, tensors))


def load_npz(path: Path) -> list[tuple[str, np.ndarray]]:
    """Named tensors of an npz file, in stored order."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return [(name, archive[name]) for name in archive.files]
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise CheckpointError(f"cannot read model file {path}: {error}") from error


class CheckpointRecord(BaseModel):
    """What ``checkpoint.json`` says about the latest completed round."""

    model_config = ConfigDict(extra="ignore")

    job: str
    round: int = Field(ge=1)
    exit_round: int = Field(ge=1)
    model_file: str
    state_file: str
    participants: int = Field(ge=0)
    total_samples: int = Field(ge=0)
    sample_counts: dict[str, int] = Field(default_factory=dict)
    updated: str


class CheckpointStore:
    """Round checkpoints of one job in ``directory``.

    Every round's global model is kept unless ``keep_models`` (> 0) limits them to the latest
    ones; the rule's state is kept for the latest round only (it is only needed to resume).
    """

    def __init__(self, directory: Path, keep_models: int = 0) -> None:
        if keep_models < 0:
            raise ValueError(f"keep_models must be >= 0 (0: all), got {keep_models}")
        self.directory = Path(directory)
        self.keep_models = keep_models

    def model_path(self, round_number: int) -> Path:
        """Where the global model of ``round_number`` is stored."""
        return self.directory / f"global_round_{round_number:05d}.npz"

    def _state_path(self, round_number: int) -> Path:
        return self.directory / f"state_round_{round_number:05d}.npz"

    def save(
        self,
        record: CheckpointRecord,
        tensors: list[tuple[str, np.ndarray]],
        state: dict[str, np.ndarray],
    ) -> CheckpointRecord:
        """Write the round's model and rule state, then point ``checkpoint.json`` at them."""
        model_path = self.model_path(record.round)
        state_path = self._state_path(record.round)
        save_npz(model_path, tensors)
        save_npz(state_path, state.items())
        record = record.model_copy(
            update={"model_file": model_path.name, "state_file": state_path.name}
        )
        body = record.model_dump_json(indent=2).encode()
        atomic_write(self.directory / CHECKPOINT_FILE, lambda stream: stream.write(body))
        self._prune(record.round)
        return record

    def load(
        self,
    ) -> tuple[CheckpointRecord, list[tuple[str, np.ndarray]], dict[str, np.ndarray]] | None:
        """The latest checkpoint (record, model, rule state), or ``None`` when there is none."""
        path = self.directory / CHECKPOINT_FILE
        if not path.exists():
            return None
        try:
            record = CheckpointRecord.model_validate(json.loads(path.read_bytes()))
        except (ValueError, ValidationError) as error:
            raise CheckpointError(f"corrupt checkpoint {path}: {error}") from error
        tensors = load_npz(self.directory / record.model_file)
        state = dict(load_npz(self.directory / record.state_file))
        return record, tensors, state

    def _prune(self, latest: int) -> None:
        limits = {"state_round_*.npz": 1, "global_round_*.npz": self.keep_models}
        for pattern, keep in limits.items():
            if keep <= 0:
                continue
            for path in self.directory.glob(pattern):
                try:
                    number = int(path.stem.rsplit("_", 1)[1])
                except ValueError:
                    continue
                if number <= latest - keep:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
