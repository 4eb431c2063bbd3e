"""The aggregator's round state: which round is open, the updates held, the global model.

Thread-safe and free of gRPC: the service calls :meth:`RoundCoordinator.check_header` before
reading a push's payload and :meth:`RoundCoordinator.submit` after decoding it; both check the
header against the current state under one lock, so a refused push never changes anything.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from sedna.algorithms.aggregation import ClientUpdate
from sedna.algorithms.compression import BaseCodec, wire_dtype_name
from sedna.core.federated_learning.errors import InvalidUpdate, JobFailed, RoundNotOpen
from sedna.core.federated_learning.wire import NamedTensors, PushHeader, TensorSpec

Layout = tuple[str, tuple[int, ...]]


@dataclass(frozen=True, eq=False)
class GlobalModel:
    """The aggregated model of one round, with who contributed."""

    round: int
    names: tuple[str, ...]
    tensors: tuple[np.ndarray, ...]
    sample_counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def participants(self) -> int:
        """Number of updates aggregated into this model."""
        return len(self.sample_counts)

    @property
    def total_samples(self) -> int:
        """Sum of the contributors' sample counts."""
        return sum(self.sample_counts.values())

    def named(self) -> NamedTensors:
        """``(name, tensor)`` pairs in model order."""
        return list(zip(self.names, self.tensors, strict=True))

    @functools.cached_property
    def specs(self) -> list[TensorSpec]:
        """The raw (``none`` codec) manifest of this model (built once: every pull asks)."""
        return [
            TensorSpec(
                name=name,
                dtype=wire_dtype_name(tensor.dtype),
                shape=tuple(int(dim) for dim in tensor.shape),
                codec="none",
                encoded_size=tensor.nbytes,
            )
            for name, tensor in self.named()
        ]

    def payloads(self) -> list[memoryview]:
        """Each tensor's little-endian bytes, as views (the ``none`` codec's payloads)."""
        views = []
        for tensor in self.tensors:
            little = np.ascontiguousarray(tensor, dtype=tensor.dtype.newbyteorder("<"))
            views.append(memoryview(little.reshape(-1)).cast("B"))
        return views


@dataclass(frozen=True)
class RoundStatus:
    """A consistent snapshot of the coordinator."""

    open_round: int
    aggregating: bool
    latest_round: int
    exit_round: int
    finished: bool
    failure: str | None
    updates: dict[str, int]
    seconds_open: float
    # When each held update came, in seconds after the round opened, earliest first.
    arrivals: tuple[float, ...] = ()

    def reached(self, count: int) -> float | None:
        """Seconds after opening when the round first held ``count`` updates (``None``: not yet)."""
        if count < 1 or len(self.arrivals) < count:
            return None
        return self.arrivals[count - 1]


@dataclass(frozen=True)
class PullView:
    """What a pull answers: the latest global model if the asked round is there."""

    ready: bool
    model: GlobalModel | None
    next_round: int
    exit: bool
    exit_round: int
    update_held: bool


@dataclass(frozen=True)
class _Held:
    header: PushHeader
    tensors: list[np.ndarray]
    arrived: float


class RoundCoordinator:
    """Round bookkeeping of one federated job (see the module docstring)."""

    def __init__(
        self,
        job: str,
        exit_round: int,
        codecs: Mapping[str, BaseCodec],
        *,
        latest: GlobalModel | None = None,
        max_update_bytes: int = 1 << 36,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job = job
        self.exit_round = exit_round
        self.codecs = dict(codecs)
        self.max_update_bytes = max_update_bytes
        self._clock = clock
        lock = threading.RLock()
        # Two conditions on one lock: the round loop wakes on every update, pulls only when a
        # model is published (waking every waiting pull on each update costs GIL hand-offs).
        self._condition = threading.Condition(lock)
        self._published = threading.Condition(lock)
        self._latest = latest
        self._layout: dict[str, Layout] | None = None
        self._order: list[str] | None = None
        if latest is not None:
            self._set_layout([(spec.name, spec.dtype, spec.shape) for spec in latest.specs])
        self._updates: dict[str, _Held] = {}
        self._aggregating = False
        self._failure: str | None = None
        self._opened_at = clock()
        self._final_pulls: set[str] = set()

    # -- state -------------------------------------------------------------------------------

    @property
    def condition(self) -> threading.Condition:
        """Notified whenever an update arrives, a final pull completes or the round changes."""
        return self._condition

    @property
    def latest(self) -> GlobalModel | None:
        """The latest global model."""
        return self._latest

    def _latest_round(self) -> int:
        return self._latest.round if self._latest is not None else 0

    def _finished(self) -> bool:
        return self._latest_round() >= self.exit_round

    def status(self) -> RoundStatus:
        """A snapshot of the round state."""
        with self._condition:
            return RoundStatus(
                open_round=self._latest_round() + 1,
                aggregating=self._aggregating,
                latest_round=self._latest_round(),
                exit_round=self.exit_round,
                finished=self._finished(),
                failure=self._failure,
                updates={
                    worker: held.header.sample_count for worker, held in self._updates.items()
                },
                seconds_open=self._clock() - self._opened_at,
                arrivals=tuple(
                    sorted(held.arrived - self._opened_at for held in self._updates.values())
                ),
            )

    def _set_layout(self, tensors: Sequence[tuple[str, str, tuple[int, ...]]]) -> None:
        self._order = [name for name, _, _ in tensors]
        self._layout = {name: (dtype, shape) for name, dtype, shape in tensors}

    # -- pushes ------------------------------------------------------------------------------

    def check_header(self, header: PushHeader) -> None:
        """Raise the refusal a push with ``header`` deserves now; change nothing."""
        with self._condition:
            self._check(header)

    def _check(self, header: PushHeader) -> None:
        if header.job != self.job:
            raise InvalidUpdate(
                f"push names job {header.job!r}; this aggregator serves {self.job!r}"
            )
        if self._failure is not None:
            raise JobFailed(f"the job failed: {self._failure}")
        open_round = self._latest_round() + 1
        if self._finished():
            raise RoundNotOpen(
                f"round {header.round} is not open: the job finished at round {self.exit_round}"
            )
        if self._aggregating:
            raise RoundNotOpen(
                f"round {header.round} is not open: round {open_round} is being aggregated; "
                f"pull it and push for round {open_round + 1}"
            )
        if header.round != open_round:
            raise RoundNotOpen(f"round {header.round} is not open; the open round is {open_round}")
        if any(spec.delta for spec in header.tensors) and header.base_round != self._latest_round():
            raise RoundNotOpen(
                f"update is relative to the global model of round {header.base_round}, "
                f"the latest is round {self._latest_round()}; pull it and train again"
            )
        if header.codec not in self.codecs:
            raise InvalidUpdate(
                f"codec {header.codec!r} is not supported; use one of {sorted(self.codecs)}"
            )
        if header.payload_size > self.max_update_bytes:
            raise InvalidUpdate(
                f"update of {header.payload_size} bytes exceeds the limit of "
                f"{self.max_update_bytes} bytes"
            )
        self._check_manifest(header)

    def _check_manifest(self, header: PushHeader) -> None:
        if self._layout is not None:
            names = {spec.name for spec in header.tensors}
            missing = [name for name in self._layout if name not in names]
            if missing:
                raise InvalidUpdate(f"tensor {missing[0]!r} of the model is missing from the push")
        for spec in header.tensors:
            if spec.codec not in (header.codec, "none"):
                raise InvalidUpdate(
                    f"tensor {spec.name!r}: codec {spec.codec!r} differs from the push's "
                    f"codec {header.codec!r}"
                )
            if self._layout is not None:
                expected = self._layout.get(spec.name)
                if expected is None:
                    raise InvalidUpdate(f"tensor {spec.name!r} is not part of the model")
                dtype, shape = expected
                if spec.dtype != dtype:
                    raise InvalidUpdate(
                        f"tensor {spec.name!r}: dtype {spec.dtype}, the model has {dtype}"
                    )
                if spec.shape != shape:
                    raise InvalidUpdate(
                        f"tensor {spec.name!r}: shape {list(spec.shape)}, the model has "
                        f"{list(shape)}"
                    )
            if spec.delta and self._latest is None:
                raise InvalidUpdate(f"tensor {spec.name!r}: a delta needs a global model")
            low, high = self.codecs[spec.codec].size_bounds(spec.dtype, spec.shape)
            if not low <= spec.encoded_size <= high:
                allowed = str(low) if low == high else f"{low}..{high}"
                raise InvalidUpdate(
                    f"tensor {spec.name!r}: encoded size {spec.encoded_size} bytes does not fit "
                    f"codec {spec.codec!r} for {spec.dtype}{list(spec.shape)} "
                    f"(expected {allowed})"
                )

    def submit(self, header: PushHeader, tensors: list[np.ndarray]) -> tuple[int, int]:
        """Hold the decoded update of ``header`` (replacing the worker's earlier one).

        Returns ``(round, updates held)``. Raises like :meth:`check_header` when the round
        closed while the payload was streaming.
        """
        with self._condition:
            self._check(header)
            by_name = dict(zip((spec.name for spec in header.tensors), tensors, strict=True))
            deltas = {spec.name for spec in header.tensors if spec.delta}
            if self._layout is None:
                self._set_layout([(s.name, s.dtype, s.shape) for s in header.tensors])
            assert self._order is not None
            if deltas:
                assert self._latest is not None
                base = dict(self._latest.named())
                for name in deltas:
                    by_name[name] = (base[name] + by_name[name]).astype(base[name].dtype)
            ordered = [by_name[name] for name in self._order]
            self._updates[header.worker] = _Held(header, ordered, self._clock())
            self._condition.notify_all()
            return header.round, len(self._updates)

    # -- rounds ------------------------------------------------------------------------------

    def begin_aggregation(self) -> tuple[int, list[ClientUpdate], list[str]]:
        """Close the open round; its number, updates (by worker name) and tensor names."""
        with self._condition:
            if self._aggregating:
                raise RuntimeError("the round is already being aggregated")
            self._aggregating = True
            updates = [
                ClientUpdate(worker, held.header.sample_count, held.tensors, handed_over=True)
                for worker, held in sorted(self._updates.items())
            ]
            return self._latest_round() + 1, updates, list(self._order or [])

    def contributors(self) -> list[dict[str, str | int]]:
        """Who holds an update in the open round: ``nodeName``, ``worker``, ``numberOfSamples``
        (the shape of a node in the job status)."""
        with self._condition:
            return [
                {
                    "nodeName": held.header.reporter_name,
                    "worker": worker,
                    "numberOfSamples": held.header.sample_count,
                }
                for worker, held in sorted(self._updates.items())
            ]

    def publish(self, model: GlobalModel) -> None:
        """Make ``model`` the latest global model and open the next round."""
        with self._condition:
            if model.round != self._latest_round() + 1:
                raise RuntimeError(
                    f"cannot publish round {model.round} after {self._latest_round()}"
                )
            self._latest = model
            self._updates.clear()
            self._aggregating = False
            self._opened_at = self._clock()
            self._condition.notify_all()
            self._published.notify_all()

    def fail(self, reason: str) -> None:
        """Fail the job: pushes and pulls are answered with the reason from now on."""
        with self._condition:
            self._failure = reason
            self._condition.notify_all()
            self._published.notify_all()

    def wait(self, timeout: float) -> None:
        """Block until notified or ``timeout`` seconds pass (call with the condition held)."""
        self._condition.wait(timeout)

    # -- pulls -------------------------------------------------------------------------------

    def wait_for_global(
        self,
        round_number: int,
        timeout: float,
        is_active: Callable[[], bool] = lambda: True,
        worker: str = "",
    ) -> PullView:
        """The latest model once it is of ``round_number`` or later (0: now), waiting at most
        ``timeout`` seconds; ``ready`` is false if it did not come. A ``worker`` asking for
        the open round without holding an update there is answered at once (it must push
        first). :class:`JobFailed` when the job failed."""
        deadline = self._clock() + max(0.0, timeout)
        with self._condition:
            while True:
                if self._failure is not None:
                    raise JobFailed(f"the job failed: {self._failure}")
                ready = round_number <= self._latest_round() or self._finished()
                held = worker in self._updates
                open_round = self._latest_round() + 1
                nothing_to_wait_for = (
                    bool(worker)
                    and round_number == open_round
                    and not self._aggregating
                    and not held
                )
                remaining = deadline - self._clock()
                if ready or nothing_to_wait_for or remaining <= 0 or not is_active():
                    return PullView(
                        ready=ready,
                        model=self._latest if ready else None,
                        next_round=open_round,
                        exit=self._finished(),
                        exit_round=self.exit_round,
                        update_held=held,
                    )
                # Wake at least every second to notice a caller that went away.
                self._published.wait(min(remaining, 1.0))

    def record_final_pull(self, worker: str) -> None:
        """Note that ``worker`` received the final model."""
        with self._condition:
            self._final_pulls.add(worker)
            self._condition.notify_all()

    def final_pulls(self) -> set[str]:
        """Workers that received the final model."""
        with self._condition:
            return set(self._final_pulls)
