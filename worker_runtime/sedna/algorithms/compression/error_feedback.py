"""Error feedback: what a lossy codec dropped this round is added to the next update."""

from __future__ import annotations

import numpy as np

from sedna.algorithms.compression.base import BaseCodec, Payload


class ErrorFeedback:
    """Per-tensor residual memory kept by a client between rounds.

    ``encode(name, x)`` sends ``codec(x + residual[name])`` and keeps
    ``residual[name] = (x + residual[name]) - decode(sent)``, so nothing is lost, only delayed.
    """

    def __init__(self, codec: BaseCodec) -> None:
        self.codec = codec
        self._residuals: dict[str, np.ndarray] = {}
        self._owed: dict[str, np.ndarray] = {}

    def encode(self, name: str, array: np.ndarray) -> Payload:
        """The payload of ``array`` plus the residual kept for ``name``."""
        residual = self._residuals.get(name)
        if residual is not None and residual.shape == array.shape:
            compensated = array + residual
        else:
            compensated = np.array(array, copy=True)
        payload = self.codec.encode(compensated)
        sent = self.codec.decode(payload, compensated.dtype, compensated.shape)
        self._residuals[name] = compensated - sent
        self._owed[name] = compensated
        return payload

    def rollback(self) -> None:
        """The last encoded payloads were not delivered: owe all of them again."""
        self._residuals.update(self._owed)
        self._owed.clear()

    def residual(self, name: str) -> np.ndarray | None:
        """What is still owed for ``name`` (``None`` before its first update)."""
        return self._residuals.get(name)

    def reset(self) -> None:
        """Forget all residuals (e.g. when the model changes)."""
        self._residuals.clear()
        self._owed.clear()
