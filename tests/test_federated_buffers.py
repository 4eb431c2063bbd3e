"""Receive buffers are reused across rounds, never while anything still uses them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sedna.core.federated_learning import AggregationClient, AggregationServer
from sedna.core.federated_learning.buffers import BufferPool
from tests.federated_support import loopback_settings

MIB = 1 << 20


def test_a_free_buffer_is_handed_out_again() -> None:
    pool = BufferPool(keep=4)
    first = pool.take(2 * MIB)
    first[:4] = b"abcd"
    del first
    second = pool.take(2 * MIB)
    assert (pool.allocated, pool.reused) == (1, 1)
    assert bytes(second[:4]) == b"abcd"  # the same memory, contents undefined


def test_a_buffer_still_viewed_is_not_handed_out() -> None:
    pool = BufferPool(keep=4)
    taken = pool.take(2 * MIB)
    array = np.frombuffer(taken, dtype=np.float32)[10:20]  # a view of a view
    array[:] = 7.0
    del taken
    other = pool.take(2 * MIB)
    other[:] = b"\x00" * (2 * MIB)
    assert pool.allocated == 2
    np.testing.assert_array_equal(array, np.full(10, 7.0, dtype=np.float32))


def test_the_pool_holds_at_most_keep_buffers() -> None:
    pool = BufferPool(keep=2)
    held = [pool.take(MIB + index) for index in range(3)]
    assert pool.held_bytes() <= 2 * (MIB + 2)
    del held
    for index in range(5):
        pool.take(2 * MIB + index)
    assert pool.held_bytes() <= 2 * (2 * MIB + 4)


def test_small_buffers_are_not_pooled() -> None:
    pool = BufferPool(keep=2)
    pool.take(100)
    assert (pool.allocated, pool.held_bytes()) == (0, 0)
    with pytest.raises(ValueError, match="at least one"):
        BufferPool(keep=0)


def test_models_in_use_survive_the_rounds_that_reuse_buffers() -> None:
    """Round after round the receive buffers are recycled (the global model is built in one of
    them); a model someone still holds, on either side, keeps its values."""
    size = 3 * MIB // 4  # 3 MiB float32 tensors: pooled on both sides
    server = AggregationServer(settings=loopback_settings("buffers", "token")).serve()
    links = [
        AggregationClient(f"127.0.0.1:{server.port}", "token", "buffers", f"w{index}")
        for index in range(2)
    ]
    kept_server: list[Any] = []
    kept_client: list[Any] = []
    try:
        for round_number in (1, 2, 3):
            for index, link in enumerate(links):
                value = 10.0 * round_number + index  # w0 and w1 differ every round
                link.push(round_number, [("t", np.full(size, value, np.float32))], 1)
            pulled = links[0].wait_for_round(round_number, timeout=30)
            kept_client.append(pulled.tensors[0][1])
            model = server.coordinator.latest
            assert model is not None and model.round == round_number
            kept_server.append(model.tensors[0])
        for round_number, (on_server, on_client) in enumerate(
            zip(kept_server, kept_client, strict=True), start=1
        ):
            expected = np.full(size, 10.0 * round_number + 0.5, np.float32)
            np.testing.assert_array_equal(on_server, expected)
            np.testing.assert_array_equal(on_client, expected)
        assert server.buffers.reused > 0
    finally:
        for link in links:
            link.close()
        server.stop(grace=0)
