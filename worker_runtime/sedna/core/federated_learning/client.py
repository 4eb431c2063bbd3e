"""The training worker's side of the weight exchange: push an update, pull a global model."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import numpy as np

from sedna.algorithms.compression import BaseCodec, ErrorFeedback, Payload, get_codec
from sedna.core.federated_learning.buffers import BufferPool
from sedna.core.federated_learning.errors import (
    AggregatorUnavailable,
    FederatedError,
    InvalidUpdate,
    JobFailed,
    NotAuthenticated,
    RoundNotOpen,
    RoundTimeout,
)
from sedna.core.federated_learning.framing import Chunk, chunk_of, deserializer, serialize
from sedna.core.federated_learning.service import PULL_METHOD, PUSH_METHOD, pb2
from sedna.core.federated_learning.wire import (
    DEFAULT_CHUNK_BYTES,
    MAX_MESSAGE_BYTES,
    TOKEN_METADATA_KEY,
    ChunkAssembler,
    NamedTensors,
    TensorSpec,
    decode_tensors,
    encode_tensors,
    iter_chunks,
    spec_from_proto,
    specs_to_proto,
)

LOG = logging.getLogger("sedna.federated_learning.client")

_T = TypeVar("_T")

_ERROR_OF: dict[grpc.StatusCode, type[FederatedError]] = {
    grpc.StatusCode.UNAUTHENTICATED: NotAuthenticated,
    grpc.StatusCode.FAILED_PRECONDITION: RoundNotOpen,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidUpdate,
    grpc.StatusCode.ABORTED: JobFailed,
}
# Codes after which the same call may succeed once the aggregator is back.
_TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED})


# Shortest pause between two pulls that came back at once without the model.
_MIN_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class PreparedPush:
    """An encoded update, ready to be sent (and sent again if the aggregator lost it)."""

    round: int
    header: Any
    payloads: list[Payload]
    size: int


@dataclass(frozen=True)
class PushResult:
    """The aggregator's acknowledgement of an update."""

    round: int
    sent_bytes: int
    updates_in_round: int
    participants: int


@dataclass(frozen=True)
class PulledModel:
    """A pull's answer: the global model of ``round`` (tensors empty when there is none)."""

    ready: bool
    round: int
    next_round: int
    exit: bool
    exit_round: int
    tensors: NamedTensors
    participants: int
    total_samples: int
    received_bytes: int
    update_held: bool = False


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for an unreachable aggregator, up to ``budget_seconds`` in all."""

    budget_seconds: float = 300.0
    initial_seconds: float = 0.2
    max_seconds: float = 5.0

    def delays(self) -> Iterator[float]:
        """Pauses between attempts until the budget is spent."""
        spent, delay = 0.0, self.initial_seconds
        while spent < self.budget_seconds:
            pause = min(delay, self.budget_seconds - spent)
            yield pause
            spent += pause
            delay = min(delay * 2, self.max_seconds)


def as_federated_error(error: grpc.RpcError) -> FederatedError:
    """The library error for a refused call."""
    code = error.code()
    kind = _ERROR_OF.get(code, FederatedError)
    return kind(f"{error.details()} ({code.name})")


class AggregationClient:
    """Pushes updates to and pulls global models from one aggregator, retrying while it is
    unreachable (e.g. restarting)."""

    def __init__(
        self,
        address: str,
        token: str,
        job: str,
        worker: str,
        *,
        node: str = "",
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        retry: RetryPolicy | None = None,
        tls_ca: bytes | None = None,
    ) -> None:
        self.address = address
        self.job = job
        self.worker = worker
        self.node = node
        self.chunk_bytes = chunk_bytes
        self.retry = retry or RetryPolicy()
        self._metadata = ((TOKEN_METADATA_KEY, token),)
        options = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            # Reconnect quickly to a restarted aggregator (gRPC's default backoff grows
            # to two minutes).
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.min_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 2000),
            ("grpc.keepalive_time_ms", 20000),
            ("grpc.keepalive_timeout_ms", 10000),
        ]
        # With a CA (``AGG_TLS_CA``) the channel is TLS and checks the aggregator's certificate.
        self._channel = (
            grpc.secure_channel(address, grpc.ssl_channel_credentials(tls_ca), options=options)
            if tls_ca is not None
            else grpc.insecure_channel(address, options=options)
        )
        self._push = self._channel.stream_unary(
            PUSH_METHOD,
            request_serializer=serialize,
            response_deserializer=pb2.PushAck.FromString,
        )
        self._pull = self._channel.unary_stream(
            PULL_METHOD,
            request_serializer=pb2.PullRequest.SerializeToString,
            response_deserializer=deserializer(pb2.PullMessage),
        )
        self._decoders = {"none": get_codec("none")}
        # Pulled models: the one the estimator holds, the one arriving, a spare.
        self._buffers = BufferPool(keep=3)

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def __enter__(self) -> AggregationClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, what: str, attempt: Callable[[], _T]) -> _T:
        delays = self.retry.delays()
        while True:
            try:
                return attempt()
            except grpc.RpcError as error:
                if error.code() not in _TRANSIENT:
                    raise as_federated_error(error) from None
                pause = next(delays, None)
                if pause is None:
                    raise AggregatorUnavailable(
                        f"aggregator {self.address} unreachable for {what} after "
                        f"{self.retry.budget_seconds:g} s: {error.details()}"
                    ) from None
                LOG.info(
                    "aggregator unreachable; retrying",
                    extra={"call": what, "address": self.address, "pause": round(pause, 2)},
                )
                time.sleep(pause)

    # -- push --------------------------------------------------------------------------------

    def prepare_push(
        self,
        round_number: int,
        tensors: NamedTensors,
        sample_count: int,
        *,
        codec: BaseCodec | None = None,
        base: NamedTensors | None = None,
        base_round: int = 0,
        feedback: ErrorFeedback | None = None,
        aggregation: str = "",
        metrics: dict[str, float] | None = None,
    ) -> PreparedPush:
        """Encode an update for ``round_number`` once (lossy codecs send differences to
        ``base``); :meth:`send` may then send it again after an aggregator restart."""
        codec = codec or get_codec("none")
        specs, payloads = encode_tensors(
            tensors, codec, base=dict(base) if base else None, feedback=feedback
        )
        header = pb2.PushHeader(
            job=self.job,
            worker=self.worker,
            node=self.node,
            round=round_number,
            sample_count=sample_count,
            codec=codec.name,
            base_round=base_round,
            aggregation=aggregation,
            metrics=metrics or {},
        )
        header.tensors.extend(specs_to_proto(specs, pb2.TensorSpec))
        size = sum(spec.encoded_size for spec in specs)
        return PreparedPush(round_number, header, payloads, size)

    def send(self, prepared: PreparedPush) -> PushResult:
        """Stream a prepared update to the aggregator."""

        def messages() -> Iterator[Any]:
            yield pb2.PushMessage(header=prepared.header)
            for parts in iter_chunks(prepared.payloads, self.chunk_bytes):
                yield Chunk(parts)

        ack = self._call("push", lambda: self._push(messages(), metadata=self._metadata))
        return PushResult(
            round=ack.round,
            sent_bytes=prepared.size,
            updates_in_round=ack.updates_in_round,
            participants=ack.participants,
        )

    def push(
        self, round_number: int, tensors: NamedTensors, sample_count: int, **options: Any
    ) -> PushResult:
        """Encode and send an update (see :meth:`prepare_push` for ``options``)."""
        return self.send(self.prepare_push(round_number, tensors, sample_count, **options))

    # -- pull --------------------------------------------------------------------------------

    def pull(self, round_number: int = 0, wait_seconds: float = 0.0) -> PulledModel:
        """The global model of ``round_number`` or later (0: the latest), waiting at most
        ``wait_seconds`` on the aggregator; ``ready`` is false if it is not there yet."""
        request = pb2.PullRequest(
            job=self.job, worker=self.worker, round=round_number, wait_seconds=wait_seconds
        )
        return self._call("pull", lambda: self._receive(request))

    def _receive(self, request: Any) -> PulledModel:
        stream = self._pull(request, metadata=self._metadata)
        first = next(stream, None)
        if first is None or chunk_of(first) is not None or not first.HasField("header"):
            raise FederatedError("the aggregator's answer did not start with a header")
        header = first.header
        specs = [TensorSpec.model_validate(spec_from_proto(spec)) for spec in header.tensors]
        tensors: NamedTensors = []
        received = 0
        if specs:
            assembler = ChunkAssembler(specs, self._buffers)
            for message in stream:
                chunk = chunk_of(message)
                if chunk is None:
                    raise FederatedError("the aggregator sent a second header")
                assembler.add(chunk)
            received = assembler.received
            arrays = decode_tensors(specs, assembler.finish(), self._decoders)
            tensors = [
                (spec.name, np.asarray(array)) for spec, array in zip(specs, arrays, strict=True)
            ]
        return PulledModel(
            ready=header.ready,
            round=header.round,
            next_round=header.next_round,
            exit=header.exit,
            exit_round=header.exit_round,
            tensors=tensors,
            participants=header.participants,
            total_samples=header.total_samples,
            received_bytes=received,
            update_held=header.update_held,
        )

    def wait_for_round(
        self,
        round_number: int,
        *,
        timeout: float,
        poll_seconds: float = 20.0,
        resend: PreparedPush | None = None,
    ) -> PulledModel:
        """Pull until the global model of ``round_number`` (or the final one) is there.

        With ``resend``, an update the aggregator no longer holds (it restarted from its
        checkpoint) is sent again.
        """
        deadline = time.monotonic() + timeout
        while True:
            asked = time.monotonic()
            remaining = deadline - asked
            result = self.pull(round_number, wait_seconds=max(0.0, min(poll_seconds, remaining)))
            if result.ready:
                return result
            lost = resend is not None and not result.update_held
            if lost and result.next_round == round_number:
                LOG.warning(
                    "the aggregator lost this worker's update (restart?); sending it again",
                    extra={"round": round_number},
                )
                assert resend is not None
                self.send(resend)
            elif time.monotonic() - asked < _MIN_POLL_SECONDS:
                time.sleep(_MIN_POLL_SECONDS)
            if remaining <= 0:
                raise RoundTimeout(
                    f"round {round_number} was not aggregated within {timeout:g} s "
                    f"(aggregator {self.address})"
                )
