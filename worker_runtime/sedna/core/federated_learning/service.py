"""The gRPC face of the aggregator: token check, push/pull handlers, error-to-status mapping."""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from sedna.algorithms.compression import BaseCodec
from sedna.core.federated_learning.buffers import BufferPool
from sedna.core.federated_learning.coordinator import GlobalModel, RoundCoordinator
from sedna.core.federated_learning.errors import (
    FederatedError,
    InvalidUpdate,
    JobFailed,
    NotAuthenticated,
    RoundNotOpen,
)
from sedna.core.federated_learning.framing import Chunk, chunk_of, deserializer, serialize
from sedna.core.federated_learning.wire import (
    TOKEN_METADATA_KEY,
    ChunkAssembler,
    decode_tensors,
    iter_chunks,
    parse_push_header,
    specs_to_proto,
)
from sedna.proto import federated

LOG = logging.getLogger("sedna.federated_learning.service")

pb2, pb2_grpc = federated()

# The one place where refusals become gRPC status codes (the client maps them back).
STATUS_OF: dict[type[FederatedError], grpc.StatusCode] = {
    NotAuthenticated: grpc.StatusCode.UNAUTHENTICATED,
    RoundNotOpen: grpc.StatusCode.FAILED_PRECONDITION,
    InvalidUpdate: grpc.StatusCode.INVALID_ARGUMENT,
    JobFailed: grpc.StatusCode.ABORTED,
}
# A pull never holds a server thread longer than this; clients ask again.
MAX_PULL_WAIT_SECONDS = 30.0


def status_of(error: FederatedError) -> grpc.StatusCode:
    """The gRPC status code for a refusal."""
    for kind, code in STATUS_OF.items():
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL


@contextlib.contextmanager
def _refusals(context: grpc.ServicerContext, method: str) -> Iterator[None]:
    try:
        yield
    except FederatedError as error:
        code = status_of(error)
        LOG.info("refused %s: %s", method, error, extra={"status": code.name})
        context.abort(code, str(error))


class TokenInterceptor(grpc.ServerInterceptor):
    """Refuses every call whose ``sedna-job-token`` metadata is missing or wrong."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("the job token must not be empty")
        self._token = token.encode()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        """Pass authenticated calls on; answer the rest with ``UNAUTHENTICATED``."""
        supplied = None
        for key, value in handler_call_details.invocation_metadata or ():
            if key == TOKEN_METADATA_KEY:
                supplied = value.encode() if isinstance(value, str) else bytes(value)
        if supplied is not None and hmac.compare_digest(supplied, self._token):
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        reason = "wrong job token" if supplied is not None else "missing job token"
        LOG.warning("refused unauthenticated call", extra={"method": handler_call_details.method})
        return _denying(handler, f"{reason} (metadata {TOKEN_METADATA_KEY!r})")


def _denying(handler: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
    def deny(_request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    serializers = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny, **serializers)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(deny, **serializers)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny, **serializers)
    return grpc.unary_unary_rpc_method_handler(deny, **serializers)


SERVICE_NAME = pb2.DESCRIPTOR.services_by_name["WeightExchange"].full_name
PUSH_METHOD = f"/{SERVICE_NAME}/Push"
PULL_METHOD = f"/{SERVICE_NAME}/Pull"


class WeightExchangeService:
    """Push and Pull of ``federated.proto`` over a :class:`RoundCoordinator`."""

    def __init__(
        self,
        coordinator: RoundCoordinator,
        codecs: dict[str, BaseCodec],
        chunk_bytes: int,
        participants: int,
        buffers: BufferPool,
        on_update: Callable[[], None] = lambda: None,
    ) -> None:
        self.coordinator = coordinator
        # Called after each accepted update, before the ack: the aggregator closes the round
        # right there when that update completes it (no hand-off to another thread).
        self.on_update = on_update
        self.codecs = codecs
        self.chunk_bytes = chunk_bytes
        self.participants = participants
        self.buffers = buffers
        self._manifest_of: tuple[GlobalModel, list[Any]] | None = None

    def handler(self) -> grpc.GenericRpcHandler:
        """The service's method handlers, chunks framed by :mod:`.framing`."""
        return grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "Push": grpc.stream_unary_rpc_method_handler(
                    self.Push,
                    request_deserializer=deserializer(pb2.PushMessage),
                    response_serializer=pb2.PushAck.SerializeToString,
                ),
                "Pull": grpc.unary_stream_rpc_method_handler(
                    self.Pull,
                    request_deserializer=pb2.PullRequest.FromString,
                    response_serializer=serialize,
                ),
            },
        )

    def Push(self, request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Any:
        """Receive one update: header, checks, chunks, decode, hold."""
        with _refusals(context, "push"):
            first = next(request_iterator, None)
            if first is None or chunk_of(first) is not None or not first.HasField("header"):
                raise InvalidUpdate("a push must start with its header")
            header = parse_push_header(first.header)
            self.coordinator.check_header(header)
            assembler = ChunkAssembler(header.tensors, self.buffers)
            for message in request_iterator:
                chunk = chunk_of(message)
                if chunk is None:
                    raise InvalidUpdate("a push carries exactly one header, first")
                assembler.add(chunk)
            if not context.is_active():
                LOG.info("push abandoned by %s", header.worker, extra={"round": header.round})
                raise InvalidUpdate("the push was cancelled")
            tensors = decode_tensors(header.tensors, assembler.finish(), self.codecs)
            round_number, held = self.coordinator.submit(header, tensors)
            LOG.info(
                "update from %s",
                header.worker,
                extra={
                    "round": round_number,
                    "samples": header.sample_count,
                    "bytes": assembler.received,
                    "codec": header.codec,
                    "held": held,
                },
            )
            self.on_update()
            return pb2.PushAck(
                round=round_number,
                received_bytes=assembler.received,
                updates_in_round=held,
                participants=self.participants,
            )

    def _manifest(self, model: GlobalModel) -> list[Any]:
        """The model's tensor specs as protos, built once per model (every pull sends them)."""
        cached = self._manifest_of
        if cached is None or cached[0] is not model:
            cached = (model, specs_to_proto(model.specs, pb2.TensorSpec))
            self._manifest_of = cached
        return cached[1]

    def Pull(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        """Stream the latest global model once the asked round is aggregated."""
        with _refusals(context, "pull"):
            if request.job != self.coordinator.job:
                raise InvalidUpdate(
                    f"pull names job {request.job!r}; this aggregator serves "
                    f"{self.coordinator.job!r}"
                )
            wait = min(max(request.wait_seconds, 0.0), MAX_PULL_WAIT_SECONDS)
            view = self.coordinator.wait_for_global(
                request.round, wait, context.is_active, request.worker
            )
        model = view.model
        header = pb2.PullHeader(
            ready=view.ready,
            round=model.round if model is not None else 0,
            next_round=view.next_round,
            exit=view.exit,
            exit_round=view.exit_round,
            update_held=view.update_held,
        )
        if model is not None:
            header.tensors.extend(self._manifest(model))
            header.participants = model.participants
            header.total_samples = model.total_samples
        yield pb2.PullMessage(header=header)
        if model is None:
            return
        for parts in iter_chunks(model.payloads(), self.chunk_bytes):
            yield Chunk(parts)
        if view.exit and request.worker:
            self.coordinator.record_final_pull(request.worker)
