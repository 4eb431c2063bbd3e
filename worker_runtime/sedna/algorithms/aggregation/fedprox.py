"""FedProx: FedAvg on the server, a proximal term ``mu/2 * ||w - w_global||^2`` on the client."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sedna.algorithms.aggregation.base import (
    BaseAggregation,
    ClientUpdate,
    Weights,
    float_param,
    register_aggregation,
    sample_weighted_mean,
)

ModelWeights = Sequence[np.ndarray] | Mapping[str, np.ndarray]


def _pairs(
    weights: ModelWeights, reference: ModelWeights
) -> list[tuple[Any, np.ndarray, np.ndarray]]:
    if isinstance(weights, Mapping) and isinstance(reference, Mapping):
        missing = set(reference) ^ set(weights)
        if missing:
            raise ValueError(f"weights and global model differ in tensors {sorted(missing)}")
        return [(key, np.asarray(weights[key]), np.asarray(reference[key])) for key in reference]
    if isinstance(weights, Mapping) or isinstance(reference, Mapping):
        raise TypeError("weights and global model must both be lists or both be mappings")
    if len(weights) != len(reference):
        raise ValueError(f"{len(weights)} tensors given, the global model has {len(reference)}")
    return [
        (index, np.asarray(mine), np.asarray(glob))
        for index, (mine, glob) in enumerate(zip(weights, reference, strict=True))
    ]


@dataclass(frozen=True)
class ProximalTerm:
    """The FedProx term for a client's local objective: ``mu/2 * ||w - w_global||^2``.

    ``global_weights`` has the structure of the estimator's ``get_weights()`` (a list of arrays
    or a mapping of name to array); so do :meth:`gradient`'s argument and result.
    """

    mu: float
    global_weights: ModelWeights

    def penalty(self, weights: ModelWeights) -> float:
        """``mu/2 * sum ||w - w_global||^2`` over all tensors."""
        total = 0.0
        for _, mine, glob in _pairs(weights, self.global_weights):
            difference = mine.astype(np.float64) - glob
            total += float(np.vdot(difference, difference))
        return 0.5 * self.mu * total

    def gradient(self, weights: ModelWeights) -> list[np.ndarray] | dict[str, np.ndarray]:
        """``mu * (w - w_global)`` for each tensor, to add to the local loss gradient."""
        pairs = _pairs(weights, self.global_weights)
        grads = [(key, (self.mu * (mine - glob)).astype(mine.dtype)) for key, mine, glob in pairs]
        if isinstance(weights, Mapping):
            return dict(grads)
        return [grad for _, grad in grads]


@register_aggregation("FedProx")
class FedProx(BaseAggregation):
    """FedAvg aggregation; ``mu`` (>= 0) is the clients' proximal coefficient (Li et al., 2020)."""

    def __init__(self, mu: Any = 0.01) -> None:
        super().__init__()
        self.mu = float_param("mu", mu, low=0.0)

    def aggregate(self, updates: Sequence[ClientUpdate]) -> Weights:
        """The sample-weighted mean, as FedAvg."""
        return sample_weighted_mean(updates)

    def client_config(self) -> dict[str, float]:
        """``{"mu": mu}`` for the training side."""
        return {"mu": self.mu}

    def proximal_term(self, global_weights: ModelWeights) -> ProximalTerm:
        """The term a client adds to its loss while training from ``global_weights``."""
        return ProximalTerm(self.mu, global_weights)
