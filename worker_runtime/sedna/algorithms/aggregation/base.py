"""The aggregation interface: configure a round, aggregate the clients' updates."""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
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
    """One training worker's model after local training, with its number of samples.

    ``handed_over``: the caller gives up ``weights`` (the aggregator drops every update once
    its round is aggregated), so a rule may build its result in their memory instead of
    allocating a fresh model; otherwise a rule must leave them untouched.
    """

    worker: str
    num_samples: int
    weights: Weights
    handed_over: bool = False


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


# Elements summed per step: small enough that a step's scratch stays in cache.
BLOCK_ELEMENTS = 1 << 18
# Fewer blocks than this per thread and handing them out costs more than it saves (measured:
# 2 x 4 MB sums in 1.5 ms on one thread, 2-4 ms on two; 8 x 100 MB in 78 ms on one, 51 on two).
MIN_BLOCKS_PER_THREAD = 8

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _block_executor() -> ThreadPoolExecutor:
    """Threads that sum blocks in parallel (numpy releases the GIL while it computes)."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=os.cpu_count() or 1, thread_name_prefix="sedna-aggregate"
            )
        return _executor


def _writable_in_place(tensors: Sequence[np.ndarray], acc_dtype: np.dtype) -> bool:
    first = tensors[0]
    return (
        first.dtype == acc_dtype
        and first.flags.writeable
        and first.flags.c_contiguous
        and not any(np.may_share_memory(first, other) for other in tensors[1:])
    )


def weighted_mean(
    tensors: Sequence[np.ndarray], coefficients: Sequence[float], *, in_place: bool = False
) -> np.ndarray:
    """``sum(c_i * t_i)`` in the tensors' dtype, one cache-sized block at a time, the blocks
    shared out to one thread per core.

    With ``in_place`` the sum is built in ``tensors[0]``'s memory when it can hold it (a
    writable, contiguous array of the accumulator's dtype sharing memory with no other
    tensor): a large model then costs no fresh allocation, whose first touch of new pages
    costs more than the arithmetic.
    """
    first = tensors[0]
    dtype = first.dtype
    acc_dtype = accumulator_dtype(dtype)
    if in_place and _writable_in_place(tensors, acc_dtype):
        total = first
    else:
        total = np.empty(first.shape, dtype=acc_dtype)
    flat_total = total.reshape(-1)
    flats = [np.ascontiguousarray(tensor).reshape(-1) for tensor in tensors]

    def sum_blocks(starts: range) -> None:
        scratch = np.empty(min(BLOCK_ELEMENTS, flat_total.size), dtype=acc_dtype)
        for start in starts:
            stop = min(start + BLOCK_ELEMENTS, flat_total.size)
            block = flat_total[start:stop]
            np.multiply(flats[0][start:stop], coefficients[0], out=block, dtype=acc_dtype)
            part = scratch[: stop - start]
            for flat, coefficient in zip(flats[1:], coefficients[1:], strict=True):
                np.multiply(flat[start:stop], coefficient, out=part, dtype=acc_dtype)
                block += part

    starts = range(0, flat_total.size, BLOCK_ELEMENTS)
    workers = min(os.cpu_count() or 1, len(starts) // MIN_BLOCKS_PER_THREAD)
    if workers <= 1:
        sum_blocks(starts)
    else:
        # Contiguous runs of blocks, one per thread; list() re-raises a thread's error.
        share = -(-len(starts) // workers)
        runs = [starts[index : index + share] for index in range(0, len(starts), share)]
        list(_block_executor().map(sum_blocks, runs))
    return cast_like(total, dtype)


def sample_weighted_mean(updates: Sequence[ClientUpdate]) -> Weights:
    """FedAvg: the mean of the updates weighted by their sample counts."""
    check_updates(updates)
    total = float(sum(update.num_samples for update in updates))
    coefficients = [update.num_samples / total for update in updates]
    in_place = updates[0].handed_over
    return [
        weighted_mean(
            [update.weights[index] for update in updates], coefficients, in_place=in_place
        )
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
