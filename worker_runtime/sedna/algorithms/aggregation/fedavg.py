"""FedAvg and its server-momentum variant FedAvgM."""

from __future__ import annotations

from collections.abc import Sequence
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


@register_aggregation("FedAvg")
class FedAvg(BaseAggregation):
    """The sample-weighted mean of the clients' models (McMahan et al., 2017)."""

    def aggregate(self, updates: Sequence[ClientUpdate]) -> Weights:
        """``sum(n_i * w_i) / sum(n_i)`` per tensor."""
        return sample_weighted_mean(updates)


@register_aggregation("FedAvgM")
class FedAvgM(BaseAggregation):
    """FedAvg with server momentum on the pseudo-gradient ``d = w_global - FedAvg(updates)``.

    ``v <- momentum * v + d``; ``w_global <- w_global - server_lr * v`` (Hsu et al., 2019).
    In a round without a previous global model the FedAvg result is taken as is. Non-float
    tensors follow FedAvg.
    """

    def __init__(self, server_lr: Any = 1.0, momentum: Any = 0.9) -> None:
        super().__init__()
        self.server_lr = float_param("server_lr", server_lr, low=0.0)
        self.momentum = float_param("momentum", momentum, low=0.0, high=1.0)
        self._velocity: dict[int, np.ndarray] = {}

    def aggregate(self, updates: Sequence[ClientUpdate]) -> Weights:
        """The momentum step from the previous global model towards the clients' mean.

        Computed in the mean's memory and the velocity's (the mean is this call's own: a fresh
        array or a handed-over update), so a round allocates nothing after the first.
        """
        average = sample_weighted_mean(updates)
        if self.global_weights is None:
            return average
        result: Weights = []
        for index, (current, mean) in enumerate(zip(self.global_weights, average, strict=True)):
            if not np.issubdtype(mean.dtype, np.floating) or current.shape != mean.shape:
                result.append(mean)
                continue
            pseudo_gradient = np.subtract(current, mean, out=mean)
            velocity = self._velocity.get(index)
            if velocity is None or velocity.shape != mean.shape or velocity.dtype != mean.dtype:
                velocity = pseudo_gradient.copy()
            else:
                velocity *= self.momentum
                velocity += pseudo_gradient
            self._velocity[index] = velocity
            step = np.multiply(velocity, -self.server_lr, out=mean)
            step += current
            result.append(step)
        return result

    def state(self) -> dict[str, np.ndarray]:
        """The momentum buffers."""
        return {f"velocity_{index}": value for index, value in self._velocity.items()}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore the momentum buffers."""
        self._velocity = {
            int(key.removeprefix("velocity_")): np.array(value)
            for key, value in state.items()
            if key.startswith("velocity_")
        }
