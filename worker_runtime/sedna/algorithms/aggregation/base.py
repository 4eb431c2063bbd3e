"""The aggregation interface: configure a round, aggregate the clients' updates."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np

from sedna.common.class_factory import ClassFactory, ClassType
from sedna.common.errors import ConfigError, SednaError

Weights = list[np.ndarray]


class AggregationError(SednaError, ValueError):
    """Updates that cannot be aggregated (none, mismatched tensors, bad sample counts)."""


@dataclass(frozen=True)
class ClientUpdate:
    """One training worker's model after local training, with its number of samples."""

    worker: str
    num_samples: int
    weights: Weights


class BaseAggregation(ABC):
    """An aggregation rule. The server calls :meth:`configure_round` then :meth:`aggregate`.

    Rules with memory across rounds (server momentum) expose it through :meth:`state` /
    :meth:`load_state` so a restarted aggregator resumes exactly.
    """

    name: ClassVar[str]

    def __init__(self) -> None:
        self.round_number = 0
        self.global_weights: Weights | None = None

    def configure_round(self, round_number: int, global_weights: Weights | None) -> None:
        """Start ``round_number``; ``global_weights`` is the model the clients started from."""
        self.round_number = round_number
        self.global_weights = global_weights

    @abstractmethod
    def aggregate(self, updates: Sequence[ClientUpdate]) -> Weights:
        """The new global model from the round's updates."""

    def state(self) -> dict[str, np.ndarray]:
        """Arrays to checkpoint between rounds (none by default)."""
        return {}

    def load_state(self, state: dict[str, np.ndarray]) -> None:  # noqa: B027 - optional hook
        """Restore what :meth:`state` returned."""

    def client_config(self) -> dict[str, float]:
        """Settings the training side needs (e.g. FedProx's ``mu``)."""
        return {}


def check_updates(updates: Sequence[ClientUpdate]) -> None:
    """Raise :class:`AggregationError` unless all updates have positive samples and one layout."""
    if not updates:
        raise AggregationError("no updates to aggregate")
    reference = updates[0]
    for update in updates:
        if update.num_samples <= 0:
            raise AggregationError(
                f"update of {update.worker!r} has {update.num_samples} samples; must be > 0"
            )
        if len(update.weights) != len(reference.weights):
            raise AggregationError(
                f"update of {update.worker!r} has {len(update.weights)} tensors, "
                f"{reference.worker!r} has {len(reference.weights)}"
            )
        for index, (mine, theirs) in enumerate(zip(update.weights, reference.weights, strict=True)):
            if mine.shape != theirs.shape or mine.dtype != theirs.dtype:
                raise AggregationError(
                    f"tensor {index} of {update.worker!r} is {mine.dtype}{list(mine.shape)}, "
                    f"{reference.worker!r} sent {theirs.dtype}{list(theirs.shape)}"
                )


def accumulator_dtype(dtype: np.dtype) -> np.dtype:
    """Floats accumulate in their own precision (at least float32), integers in float64."""
    if np.issubdtype(dtype, np.floating):
        return np.result_type(dtype, np.float32)
    return np.dtype(np.float64)


def cast_like(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``values`` in ``dtype``, rounding when ``dtype`` is not a float."""
    if np.issubdtype(dtype, np.floating):
        return values.astype(dtype, copy=False)
    if dtype == np.bool_:
        return values >= 0.5
    return np.rint(values).astype(dtype)


def weighted_mean(tensors: Sequence[np.ndarray], coefficients: Sequence[float]) -> np.ndarray:
    """``sum(c_i * t_i)`` in the tensors' dtype, without a temporary per client."""
    dtype = tensors[0].dtype
    acc_dtype = accumulator_dtype(dtype)
    total = np.multiply(tensors[0], coefficients[0], dtype=acc_dtype)
    scratch = np.empty_like(total)
    for tensor, coefficient in zip(tensors[1:], coefficients[1:], strict=True):
        np.multiply(tensor, coefficient, out=scratch, dtype=acc_dtype)
        total += scratch
    return cast_like(total, dtype)


def sample_weighted_mean(updates: Sequence[ClientUpdate]) -> Weights:
    """FedAvg: the mean of the updates weighted by their sample counts."""
    check_updates(updates)
    total = float(sum(update.num_samples for update in updates))
    coefficients = [update.num_samples / total for update in updates]
    return [
        weighted_mean([update.weights[index] for update in updates], coefficients)
        for index in range(len(updates[0].weights))
    ]


def float_param(name: str, value: Any, *, low: float, high: float | None = None) -> float:
    """``value`` as a float within ``[low, high]``; :class:`ConfigError` naming ``name``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not np.isfinite(number) or number < low or (high is not None and number > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ConfigError(f"{name} must be {bound}, got {number}")
    return number


_RuleClass = TypeVar("_RuleClass", bound=type[BaseAggregation])


def register_aggregation(name: str) -> Callable[[_RuleClass], _RuleClass]:
    """Class decorator registering an aggregation rule under ``name`` (sets ``cls.name``)."""

    def decorator(cls: _RuleClass) -> _RuleClass:
        cls.name = name
        ClassFactory.register_cls(cls, ClassType.FL_AGG, alias=name)
        return cls

    return decorator


def get_aggregation(name: str, **params: Any) -> BaseAggregation:
    """A rule instance by registered name, e.g. ``get_aggregation("FedAvgM", momentum=0.9)``."""
    cls = ClassFactory.get_cls(ClassType.FL_AGG, name)
    try:
        return cls(**params)
    except TypeError as error:
        raise ConfigError(f"bad parameters for aggregation {name!r}: {error}") from None


def aggregation_names() -> list[str]:
    """Names of the registered aggregation rules."""
    return ClassFactory.names(ClassType.FL_AGG)
