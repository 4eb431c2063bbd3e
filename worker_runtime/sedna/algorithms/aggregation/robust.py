"""Byzantine-robust aggregation: the coordinate-wise trimmed mean."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from sedna.algorithms.aggregation.base import (
    BaseAggregation,
    ClientUpdate,
    Weights,
    accumulator_dtype,
    cast_like,
    check_updates,
    float_param,
    register_aggregation,
)
from sedna.common.errors import ConfigError


@register_aggregation("TrimmedMean")
class TrimmedMean(BaseAggregation):
    """Per coordinate, drop the ``floor(trim_ratio * n)`` largest and smallest of the ``n``
    clients' values and average the rest (unweighted; Yin et al., 2018).

    ``trim_ratio`` is in ``[0, 0.5)``, so at least one value always remains.
    """

    def __init__(self, trim_ratio: Any = 0.2) -> None:
        super().__init__()
        self.trim_ratio = float_param("trim_ratio", trim_ratio, low=0.0, high=0.5)
        if self.trim_ratio >= 0.5:
            raise ConfigError(f"trim_ratio must be below 0.5, got {self.trim_ratio}")

    def trimmed(self, clients: int) -> int:
        """How many values are dropped at each end for ``clients`` updates."""
        return math.floor(self.trim_ratio * clients)

    def aggregate(self, updates: Sequence[ClientUpdate]) -> Weights:
        """The coordinate-wise trimmed mean of every tensor."""
        check_updates(updates)
        cut = self.trimmed(len(updates))
        result: Weights = []
        for index in range(len(updates[0].weights)):
            dtype = updates[0].weights[index].dtype
            stacked = np.stack([update.weights[index] for update in updates])
            stacked = stacked.astype(accumulator_dtype(dtype), copy=False)
            if cut:
                stacked = np.sort(stacked, axis=0)[cut : len(updates) - cut]
            result.append(cast_like(stacked.mean(axis=0), dtype))
        return result
