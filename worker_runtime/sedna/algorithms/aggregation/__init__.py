"""Aggregation rules for federated learning, registered by name.

``FedAvg`` (sample-weighted mean), ``FedAvgM`` (server momentum; ``server_lr``, ``momentum``),
``FedProx`` (FedAvg on the server; ``mu`` and :class:`ProximalTerm` for the client) and
``TrimmedMean`` (coordinate-wise; ``trim_ratio``). ``get_aggregation(name, **params)`` builds one.
"""

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
