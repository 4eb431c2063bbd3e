"""The gRPC weight exchange over loopback: refusals leave the round untouched, big models
stream, pulls wait for their round."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest

from sedna.algorithms.compression import get_codec
from sedna.core.federated_learning import (
    AggregationClient,
    AggregationServer,
    InvalidUpdate,
    NotAuthenticated,
    RoundNotOpen,
    RoundStatus,
)
from sedna.core.federated_learning.framing import Chunk, chunk_of, deserializer, serialize
from sedna.core.federated_learning.service import pb2, pb2_grpc
from sedna.core.federated_learning.wire import TOKEN_METADATA_KEY, iter_chunks
from tests.federated_support import loopback_settings

TOKEN = "s3cret-token"
JOB = "exchange-test"
MODEL = [
    ("w", np.arange(12, dtype=np.float32).reshape(4, 3)),
    ("b", np.zeros(3, dtype=np.float32)),
]


@pytest.fixture
def server() -> Iterator[AggregationServer]:
    aggregator = AggregationServer(
        settings=loopback_settings(JOB, TOKEN), initial_weights=MODEL
    ).serve()
    yield aggregator
    aggregator.stop(grace=0)


def _client(server: AggregationServer, worker: str = "w1", token: str = TOKEN) -> AggregationClient:
    return AggregationClient(f"127.0.0.1:{server.port}", token, JOB, worker)


def _tensors(**changes: np.ndarray) -> list[tuple[str, np.ndarray]]:
    return [(name, changes.get(name, tensor + 1)) for name, tensor in MODEL]


def _unchanged(server: AggregationServer, before: RoundStatus) -> None:
    after = server.status()
    assert (after.open_round, after.latest_round, after.updates, after.aggregating) == (
        before.open_round,
        before.latest_round,
        before.updates,
        before.aggregating,
    )


def _raw_push(server: AggregationServer, messages: list[Any], token: str | None = TOKEN) -> Any:
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        stub = pb2_grpc.WeightExchangeStub(channel)
        metadata = ((TOKEN_METADATA_KEY, token),) if token is not None else ()
        return stub.Push(iter(messages), metadata=metadata)
    finally:
        channel.close()


def _header(**fields: Any) -> Any:
    tensors = fields.pop(
        "tensors",
        [
            pb2.TensorSpec(name="w", dtype="float32", shape=[4, 3], codec="none", encoded_size=48),
            pb2.TensorSpec(name="b", dtype="float32", shape=[3], codec="none", encoded_size=12),
        ],
    )
    values: dict[str, Any] = {
        "job": JOB,
        "worker": "raw",
        "round": 1,
        "sample_count": 5,
        "codec": "none",
        **fields,
    }
    header = pb2.PushHeader(**values)
    header.tensors.extend(tensors)
    return pb2.PushMessage(header=header)


def _chunks(*sizes: int) -> list[Any]:
    return [pb2.PushMessage(chunk=bytes(size)) for size in sizes]


def test_push_without_token_is_unauthenticated(server: AggregationServer) -> None:
    before = server.status()
    with pytest.raises(grpc.RpcError) as refused:
        _raw_push(server, [_header(), *_chunks(60)], token=None)
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "missing job token" in refused.value.details()
    _unchanged(server, before)


def test_push_with_wrong_token_is_unauthenticated(server: AggregationServer) -> None:
    before = server.status()
    with (
        _client(server, token="not-the-token") as client,
        pytest.raises(NotAuthenticated, match="wrong job token"),
    ):
        client.push(1, _tensors(), 10)
    _unchanged(server, before)


def test_pull_without_token_is_unauthenticated(server: AggregationServer) -> None:
    with _client(server, token="nope") as client, pytest.raises(NotAuthenticated):
        client.pull(0)


def test_push_for_wrong_round_is_failed_precondition(server: AggregationServer) -> None:
    before = server.status()
    with (
        _client(server) as client,
        pytest.raises(RoundNotOpen, match="round 2 is not open; the open round is 1") as refused,
    ):
        client.push(2, _tensors(), 10)
    assert "FAILED_PRECONDITION" in str(refused.value)
    _unchanged(server, before)


@pytest.mark.parametrize(
    ("tensors", "message"),
    [
        (
            _tensors(w=np.ones((3, 4), np.float32)),
            r"tensor 'w': shape \[3, 4\], the model has \[4, 3\]",
        ),
        (_tensors(b=np.ones(3, np.float64)), "tensor 'b': dtype float64, the model has float32"),
        ([("w", np.ones((4, 3), np.float32))], "tensor 'b' of the model is missing"),
        (
            [*_tensors(), ("extra", np.ones(2, np.float32))],
            "tensor 'extra' is not part of the model",
        ),
    ],
)
def test_push_not_matching_the_model_is_invalid_argument(
    server: AggregationServer, tensors: list[tuple[str, np.ndarray]], message: str
) -> None:
    before = server.status()
    with _client(server) as client, pytest.raises(InvalidUpdate, match=message) as refused:
        client.push(1, tensors, 10)
    assert "INVALID_ARGUMENT" in str(refused.value)
    _unchanged(server, before)


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        # The manifest's size does not fit the tensor's dtype and shape.
        (
            [
                _header(
                    tensors=[
                        pb2.TensorSpec(
                            name="w", dtype="float32", shape=[4, 3], codec="none", encoded_size=40
                        ),
                        pb2.TensorSpec(
                            name="b", dtype="float32", shape=[3], codec="none", encoded_size=12
                        ),
                    ]
                ),
                *_chunks(52),
            ],
            r"tensor 'w': encoded size 40 bytes does not fit codec 'none' for float32\[4, 3\]",
        ),
        # The stream carries fewer bytes than the header declares.
        ([_header(), *_chunks(30, 20)], "tensor 'b': stream ended after 2 of its 12"),
        # ... or more.
        ([_header(), *_chunks(40, 40)], "payload larger than the manifest declares"),
        # A payload that does not decode.
        (
            [
                _header(
                    codec="topk",
                    tensors=[
                        pb2.TensorSpec(
                            name="w", dtype="float32", shape=[4, 3], codec="topk", encoded_size=16
                        ),
                        pb2.TensorSpec(
                            name="b", dtype="float32", shape=[3], codec="none", encoded_size=12
                        ),
                    ],
                ),
                *_chunks(28),
            ],
            "tensor 'w': corrupt topk payload",
        ),
        ([_header(codec="zip"), *_chunks(60)], "codec 'zip' is not supported"),
        ([_header(job="other-job"), *_chunks(60)], "push names job 'other-job'"),
        ([_header(sample_count=0), *_chunks(60)], "sample_count: Input should be greater than 0"),
        ([*_chunks(60)], "must start with its header"),
        ([_header(), _header(), *_chunks(60)], "exactly one header"),
    ],
)
def test_malformed_push_is_invalid_argument(
    server: AggregationServer, messages: list[Any], message: str
) -> None:
    before = server.status()
    with pytest.raises(grpc.RpcError) as refused:
        _raw_push(server, messages)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert re.search(message, refused.value.details())
    _unchanged(server, before)


def test_refusals_keep_a_held_update(server: AggregationServer) -> None:
    with _client(server) as client:
        ack = client.push(1, _tensors(), 10)
        assert (ack.round, ack.updates_in_round, ack.participants) == (1, 1, 2)
        held = server.status()
        assert held.updates == {"w1": 10}
        with pytest.raises(InvalidUpdate):
            client.push(1, _tensors(w=np.ones((2, 6), np.float32)), 99)
        with pytest.raises(RoundNotOpen):
            client.push(3, _tensors(), 99)
    _unchanged(server, held)


def test_stale_delta_is_refused(server: AggregationServer) -> None:
    before = server.status()
    codec = get_codec("int8")
    with (
        _client(server) as client,
        pytest.raises(RoundNotOpen, match="relative to the global model of round 4"),
    ):
        client.push(1, _tensors(), 10, codec=codec, base=MODEL, base_round=4)
    _unchanged(server, before)


def test_round_aggregates_and_pull_waits_for_it(server: AggregationServer) -> None:
    pulled: list[Any] = []
    with _client(server, "w1") as first, _client(server, "w2") as second:
        first.push(1, [("w", MODEL[0][1] + 2), ("b", np.full(3, 4, np.float32))], 1)
        waiter = threading.Thread(target=lambda: pulled.append(first.pull(1, wait_seconds=30)))
        waiter.start()
        # Lossy delta against the round-0 model: int8 of (w + 6 - w) is exact for a constant.
        second.push(
            1,
            [("w", MODEL[0][1] + 6), ("b", np.full(3, 8, np.float32))],
            3,
            codec=get_codec("int8"),
            base=MODEL,
            base_round=0,
        )
        waiter.join(timeout=30)
    (result,) = pulled
    assert result.ready and result.round == 1 and result.next_round == 2
    assert result.participants == 2 and result.total_samples == 4
    weights = dict(result.tensors)
    # (1 * (w + 2) + 3 * (w + 6)) / 4 = w + 5; (1 * 4 + 3 * 8) / 4 = 7
    np.testing.assert_allclose(weights["w"], MODEL[0][1] + 5, rtol=1e-6)
    np.testing.assert_allclose(weights["b"], np.full(3, 7.0))


def test_pull_answers_not_ready_after_its_wait(server: AggregationServer) -> None:
    with _client(server, "w1") as client:
        client.push(1, _tensors(), 10)
        result = client.pull(1, wait_seconds=0.2)
    assert not result.ready and result.update_held and result.tensors == []
    assert result.next_round == 1


def test_pull_of_an_open_round_without_an_update_returns_at_once(
    server: AggregationServer,
) -> None:
    with _client(server, "w9") as client:
        result = client.pull(1, wait_seconds=30)
    assert not result.ready and not result.update_held


def test_large_model_streams_both_ways() -> None:
    rng = np.random.default_rng(3)
    big = rng.standard_normal(16 * 1024 * 1024, dtype=np.float32).reshape(4096, 4096)  # 64 MiB
    tensors = [("big", big), ("bias", rng.standard_normal(4096).astype(np.float32))]
    aggregator = AggregationServer(
        settings=loopback_settings(JOB, TOKEN, participants=1, exit_round=1)
    ).serve()
    try:
        with _client(aggregator) as client:
            ack = client.push(1, tensors, 100)
            result = client.wait_for_round(1, timeout=120)
    finally:
        aggregator.stop(grace=0)
    assert ack.sent_bytes == big.nbytes + 4096 * 4
    assert result.exit and result.round == 1 and result.received_bytes == ack.sent_bytes
    received = dict(result.tensors)
    np.testing.assert_array_equal(received["big"], big)
    np.testing.assert_array_equal(received["bias"], tensors[1][1])


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16384, 1 << 20])
def test_hand_framed_chunks_are_protobuf_wire_format(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    framed = serialize(Chunk((memoryview(data),)))
    assert framed == pb2.PushMessage(chunk=data).SerializeToString()
    assert pb2.PullMessage.FromString(framed).chunk == data
    parsed = deserializer(pb2.PullMessage)(framed)
    assert isinstance(parsed, Chunk) and bytes(parsed.data) == data


def test_framing_leaves_other_messages_to_protobuf() -> None:
    header = pb2.PushMessage(header=pb2.PushHeader(job=JOB, round=3))
    parsed = deserializer(pb2.PushMessage)(serialize(header))
    assert chunk_of(parsed) is None and parsed.header.round == 3
    # A chunk followed by another field is not a plain chunk message: protobuf parses it.
    mixed = pb2.PushMessage(chunk=b"abc").SerializeToString() + b"\x08\x01"
    assert chunk_of(deserializer(pb2.PushMessage)(mixed)) is not None


@pytest.mark.parametrize("sizes", [[10, 3, 0, 25], [64], [1, 1, 1], [100, 28], [0]])
def test_chunks_cover_the_payloads_exactly(sizes: list[int]) -> None:
    payloads = [bytes([index + 1]) * size for index, size in enumerate(sizes)]
    chunks = [b"".join(parts) for parts in iter_chunks(payloads, 16)]
    assert b"".join(chunks) == b"".join(payloads)
    assert all(len(chunk) == 16 for chunk in chunks[:-1])
    assert not chunks or 0 < len(chunks[-1]) <= 16


def test_chunks_spanning_tensors_are_views_framed_as_one_field() -> None:
    first, second = bytearray(b"a" * 10), bytearray(b"b" * 10)
    chunks = list(iter_chunks([first, second], 16))
    assert [len(parts) for parts in chunks] == [2, 1]
    first[0:1] = b"z"  # the parts are views of the payloads, not copies
    assert bytes(chunks[0][0][:1]) == b"z"
    framed = serialize(Chunk(chunks[0]))
    assert framed == pb2.PushMessage(chunk=b"z" + b"a" * 9 + b"b" * 6).SerializeToString()
