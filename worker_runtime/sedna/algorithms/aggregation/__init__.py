"""Aggregation rules for federated learning, registered by name.

``FedAvg`` (sample-weighted mean), ``FedAvgM`` (server momentum; ``server_lr``, ``momentum``),
``FedProx`` (FedAvg on the server; ``mu`` and :class:`ProximalTerm` for the client) and
``TrimmedMean`` (coordinate-wise; ``trim_ratio``). ``get_aggregation(name, **params)`` builds one.
"""

from typing import Any

from sedna.algorithms.aggregation.base import (
    AggregationError,
    BaseAggregation,
    ClientUpdate,
    Weights,
    aggregation_names,
    get_aggregation,
    register_aggregation,
)
from sedna.algorithms.aggregation.fedavg import FedAvg, FedAvgM
from sedna.algorithms.aggregation.fedprox import FedProx, ProximalTerm
from sedna.algorithms.aggregation.robust import TrimmedMean

__all__ = [
    "AggregationError",
    "BaseAggregation",
    "ClientUpdate",
    "FedAvg",
    "FedAvgM",
    "FedProx",
    "ProximalTerm",
    "TrimmedMean",
    "Weights",
    "aggregation_names",
    "get_aggregation",
    "register_aggregation",
]


def __getattr__(name: str) -> Any:
    if name in ("MistNet", "FedAvgV2", "AggClient"):
        raise ImportError(
            f"sedna.algorithms.aggregation.{name} is not supported: it belongs to the Plato-based "
            "federated learning v2; use FedAvg, FedAvgM, FedProx or TrimmedMean",
            name=name,
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
