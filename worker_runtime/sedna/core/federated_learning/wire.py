"""What travels: the parsed push header, tensor manifests, chunking and reassembly."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sedna.algorithms.compression import (
    BaseCodec,
    CodecError,
    ErrorFeedback,
    Payload,
    get_codec,
    wire_dtype,
    wire_dtype_name,
)
from sedna.core.federated_learning.buffers import BufferPool
from sedna.core.federated_learning.errors import InvalidUpdate

TOKEN_METADATA_KEY = "sedna-job-token"
# Measured on loopback: 1 MiB chunks moved weights fastest for client-stream up plus
# server-stream down (~500 MB/s, docs in notes/federated-learning.md); 0.25 and 16 MiB were
# 25-35 % slower.
DEFAULT_CHUNK_BYTES = 1 << 20
# gRPC's per-message cap must exceed a chunk plus framing.
MAX_MESSAGE_BYTES = 64 << 20

NamedTensors = list[tuple[str, np.ndarray]]


class _WireModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(_WireModel):
    """One tensor of a manifest: name, dtype, shape, codec and encoded payload size."""

    name: str = Field(min_length=1)
    dtype: str
    shape: tuple[int, ...]
    codec: str = "none"
    encoded_size: int = Field(ge=0)
    delta: bool = False

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, value: str) -> str:
        try:
            return wire_dtype_name(value)
        except CodecError as error:
            raise ValueError(str(error)) from None

    @field_validator("shape")
    @classmethod
    def _non_negative(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(dim < 0 for dim in value):
            raise ValueError(f"negative dimension in shape {list(value)}")
        return value

    def layout(self) -> tuple[str, tuple[int, ...]]:
        """``(dtype, shape)``: what must match the model."""
        return self.dtype, self.shape


class PushHeader(_WireModel):
    """The first message of a push, parsed and checked once at the edge of the aggregator."""

    job: str
    worker: str = Field(min_length=1)
    node: str = ""
    round: int = Field(ge=1)
    sample_count: int = Field(gt=0)
    codec: str = Field(min_length=1)
    tensors: tuple[TensorSpec, ...] = Field(min_length=1)
    base_round: int = Field(default=0, ge=0)
    aggregation: str = ""
    metrics: dict[str, float] = Field(default_factory=dict)

    @field_validator("tensors")
    @classmethod
    def _unique_names(cls, value: tuple[TensorSpec, ...]) -> tuple[TensorSpec, ...]:
        seen: set[str] = set()
        for spec in value:
            if spec.name in seen:
                raise ValueError(f"tensor {spec.name!r} appears twice in the manifest")
            seen.add(spec.name)
        return value

    @property
    def payload_size(self) -> int:
        """Total bytes of all tensors' payloads."""
        return sum(spec.encoded_size for spec in self.tensors)

    @property
    def reporter_name(self) -> str:
        """The node when given, else the worker (names a node in the job status)."""
        return self.node or self.worker


def spec_from_proto(message: Any) -> dict[str, Any]:
    """A ``TensorSpec`` proto as plain fields."""
    return {
        "name": message.name,
        "dtype": message.dtype,
        "shape": tuple(message.shape),
        "codec": message.codec,
        "encoded_size": message.encoded_size,
        "delta": message.delta,
    }


def parse_push_header(message: Any) -> PushHeader:
    """Validate a ``PushHeader`` proto; :class:`InvalidUpdate` names the offending field."""
    try:
        return PushHeader.model_validate(
            {
                "job": message.job,
                "worker": message.worker,
                "node": message.node,
                "round": message.round,
                "sample_count": message.sample_count,
                "codec": message.codec,
                "tensors": [spec_from_proto(spec) for spec in message.tensors],
                "base_round": message.base_round,
                "aggregation": message.aggregation,
                "metrics": dict(message.metrics),
            }
        )
    except ValidationError as error:
        raise InvalidUpdate(f"bad push header: {_describe(error, message)}") from None


def _describe(error: ValidationError, message: Any) -> str:
    parts = []
    for issue in error.errors():
        location = list(issue["loc"])
        if len(location) >= 2 and location[0] == "tensors" and isinstance(location[1], int):
            index = location[1]
            name = message.tensors[index].name if index < len(message.tensors) else index
            where = f"tensor {name!r}" + "".join(f".{part}" for part in location[2:])
        else:
            where = ".".join(str(part) for part in location) or "header"
        parts.append(f"{where}: {issue['msg']}")
    return "; ".join(parts)


def specs_to_proto(specs: Iterable[TensorSpec], message_type: Any) -> list[Any]:
    """``TensorSpec`` models as proto messages of ``message_type``."""
    return [message_type(**spec.model_dump()) for spec in specs]


def encode_tensors(
    tensors: NamedTensors,
    codec: BaseCodec,
    *,
    base: dict[str, np.ndarray] | None = None,
    feedback: ErrorFeedback | None = None,
) -> tuple[list[TensorSpec], list[Payload]]:
    """Manifest and payloads of ``tensors``; tensors the codec cannot take travel as ``none``.

    With ``base`` (the global model trained from), lossy-coded tensors travel as differences
    to it; with ``feedback``, those differences carry what earlier rounds dropped. Without a
    base, codecs meant for differences only (top-k) fall back to ``none``.
    """
    exact = get_codec("none")
    specs: list[TensorSpec] = []
    payloads: list[Payload] = []
    for name, array in tensors:
        array = np.asarray(array)
        dtype = wire_dtype(array.dtype)
        chosen = codec if codec.supports(dtype) else exact
        reference = base.get(name) if base is not None and chosen.lossy else None
        delta = reference is not None and reference.shape == array.shape
        if chosen.differences_only and not delta:
            chosen = exact
        if delta:
            array = array - reference.astype(array.dtype, copy=False)
        if delta and feedback is not None and chosen.error_feedback:
            payload = feedback.encode(name, array)
        else:
            payload = chosen.encode(array)
        specs.append(
            TensorSpec(
                name=name,
                dtype=wire_dtype_name(dtype),
                shape=tuple(int(dim) for dim in array.shape),
                codec=chosen.name,
                encoded_size=memoryview(payload).nbytes,
                delta=delta,
            )
        )
        payloads.append(payload)
    return specs, payloads


def iter_chunks(payloads: Iterable[Payload], chunk_bytes: int) -> Iterator[tuple[memoryview, ...]]:
    """The concatenation of ``payloads`` cut into chunks of ``chunk_bytes`` (last one shorter).

    Each chunk is given as its parts, views of the payloads: nothing is copied here (a chunk
    spanning payloads is joined once, when framed).
    """
    if chunk_bytes <= 0:
        raise ValueError(f"chunk size must be positive, got {chunk_bytes}")
    pending: list[memoryview] = []
    pending_size = 0
    for payload in payloads:
        view = memoryview(payload).cast("B")
        offset = 0
        while len(view) - offset >= chunk_bytes - pending_size:
            end = offset + chunk_bytes - pending_size
            yield (*pending, view[offset:end])
            pending, pending_size, offset = [], 0, end
        if offset < len(view):
            pending.append(view[offset:])
            pending_size += len(view) - offset
    if pending:
        yield tuple(pending)


class ChunkAssembler:
    """Collects a stream's chunks into one buffer of the size the manifest declares.

    The buffer comes from ``pool`` (see :mod:`.buffers` for why that matters), else it is
    fresh.
    """

    def __init__(self, specs: Sequence[TensorSpec], pool: BufferPool | None = None) -> None:
        self.specs = list(specs)
        self.expected = sum(spec.encoded_size for spec in self.specs)
        self._buffer = (
            pool.take(self.expected) if pool is not None else memoryview(bytearray(self.expected))
        )
        self.received = 0

    def add(self, chunk: bytes | memoryview) -> None:
        """Append ``chunk``; :class:`InvalidUpdate` when the stream outgrows the manifest."""
        end = self.received + memoryview(chunk).nbytes
        if end > self.expected:
            last = self.specs[-1].name if self.specs else "<none>"
            raise InvalidUpdate(
                f"payload larger than the manifest declares: more than {self.expected} bytes "
                f"(declared sizes end with tensor {last!r})"
            )
        self._buffer[self.received : end] = chunk
        self.received = end

    def finish(self) -> list[memoryview]:
        """Each tensor's payload; :class:`InvalidUpdate` naming the tensor left incomplete."""
        views: list[memoryview] = []
        whole = self._buffer
        offset = 0
        for spec in self.specs:
            end = offset + spec.encoded_size
            if end > self.received:
                raise InvalidUpdate(
                    f"tensor {spec.name!r}: stream ended after {max(0, self.received - offset)} "
                    f"of its {spec.encoded_size} declared bytes"
                )
            views.append(whole[offset:end])
            offset = end
        return views


def decode_tensors(
    specs: Sequence[TensorSpec], payloads: Sequence[Payload], codecs: dict[str, BaseCodec]
) -> list[np.ndarray]:
    """Decode each payload with its spec's codec; :class:`InvalidUpdate` names the tensor."""
    tensors: list[np.ndarray] = []
    for spec, payload in zip(specs, payloads, strict=True):
        codec = codecs.get(spec.codec)
        if codec is None:
            raise InvalidUpdate(f"tensor {spec.name!r}: codec {spec.codec!r} is not allowed here")
        try:
            tensors.append(codec.decode(payload, spec.dtype, spec.shape))
        except CodecError as error:
            raise InvalidUpdate(f"tensor {spec.name!r}: {error}") from None
    return tensors
