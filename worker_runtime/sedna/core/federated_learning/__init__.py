"""Federated learning: the training worker (:class:`FederatedLearning`) and the aggregation
worker (:class:`AggregationServer`), exchanging weights over gRPC (``proto/federated.proto``).
"""

from typing import Any

from sedna.core.federated_learning.checkpoint import CheckpointStore, load_npz, save_npz
from sedna.core.federated_learning.client import AggregationClient, PulledModel, RetryPolicy
from sedna.core.federated_learning.coordinator import GlobalModel, RoundStatus
from sedna.core.federated_learning.errors import (
    AggregatorUnavailable,
    FederatedError,
    InvalidUpdate,
    JobFailed,
    NotAuthenticated,
    PushRefused,
    RoundNotOpen,
    RoundTimeout,
)
from sedna.core.federated_learning.policy import RoundAction, RoundPolicy
from sedna.core.federated_learning.server import AggregationServer
from sedna.core.federated_learning.settings import AggregatorSettings, TrainerSettings
from sedna.core.federated_learning.trainer import (
    FederatedEstimator,
    FederatedLearning,
    TrainingSummary,
    num_samples,
)

__all__ = [
    "AggregationClient",
    "AggregationServer",
    "AggregatorSettings",
    "AggregatorUnavailable",
    "CheckpointStore",
    "FederatedError",
    "FederatedEstimator",
    "FederatedLearning",
    "GlobalModel",
    "InvalidUpdate",
    "JobFailed",
    "NotAuthenticated",
    "PulledModel",
    "PushRefused",
    "RetryPolicy",
    "RoundAction",
    "RoundNotOpen",
    "RoundPolicy",
    "RoundStatus",
    "RoundTimeout",
    "TrainerSettings",
    "TrainingSummary",
    "load_npz",
    "num_samples",
    "save_npz",
]


def __getattr__(name: str) -> Any:
    if name == "FederatedLearningV2":
        raise ImportError(
            "sedna.core.federated_learning.FederatedLearningV2 is not supported: it runs on the "
            "Plato framework; use FederatedLearning (weights over gRPC)",
            name=name,
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
