"""Weight compression codecs: round trips with error bounds, error feedback, bad input."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from sedna.algorithms.compression import (
    CodecError,
    ErrorFeedback,
    codec_names,
    get_codec,
)

RNG = np.random.default_rng(7)


def test_registry_names_the_four_codecs() -> None:
    assert {"none", "fp16", "int8", "topk"} <= set(codec_names())


@pytest.mark.parametrize(
    "array",
    [
        RNG.normal(size=(5, 7)).astype(np.float32),
        RNG.normal(size=(3,)).astype(np.float64),
        RNG.integers(-1000, 1000, size=(4, 2, 3)).astype(np.int64),
        np.array([True, False, True]),
        np.array(3.5, dtype=np.float32),
        np.zeros((0, 4), dtype=np.float32),
    ],
)
def test_none_is_exact_for_every_dtype_and_shape(array: np.ndarray) -> None:
    codec = get_codec("none")
    payload = bytes(codec.encode(array))
    assert len(payload) == array.nbytes
    decoded = codec.decode(payload, array.dtype, array.shape)
    assert decoded.dtype == array.dtype and decoded.shape == array.shape
    np.testing.assert_array_equal(decoded, array)


def test_none_sends_big_endian_input_as_little_endian() -> None:
    array = np.arange(6, dtype=">f4").reshape(2, 3)
    codec = get_codec("none")
    payload = bytes(codec.encode(array))
    assert payload == array.astype("<f4").tobytes()
    np.testing.assert_array_equal(codec.decode(payload, "float32", (2, 3)), array)


def test_fp16_relative_error_is_within_half_precision() -> None:
    # Magnitudes inside fp16's normal range (>= 2**-14), where rounding is relative.
    magnitudes = np.exp(RNG.uniform(np.log(1e-4), np.log(6e4), size=2000))
    array = (magnitudes * RNG.choice([-1.0, 1.0], size=2000)).astype(np.float32)
    codec = get_codec("fp16")
    payload = codec.encode(array)
    assert len(payload) == 2 * array.size
    decoded = codec.decode(payload, np.float32, array.shape)
    relative = np.abs(decoded - array) / np.abs(array)
    assert relative.max() <= 2.0**-11


def test_fp16_refuses_values_it_cannot_represent() -> None:
    codec = get_codec("fp16")
    with pytest.raises(CodecError, match="beyond"):
        codec.encode(np.array([70000.0], dtype=np.float32))
    with pytest.raises(CodecError, match="NaN"):
        codec.encode(np.array([np.nan], dtype=np.float32))


def test_int8_error_is_at_most_half_a_step() -> None:
    array = RNG.normal(scale=3.0, size=(40, 25)).astype(np.float32)
    codec = get_codec("int8")
    payload = codec.encode(array)
    assert len(payload) == 4 + array.size
    decoded = codec.decode(payload, np.float32, array.shape)
    scale = float(np.float32(np.abs(array).max() / 127.0))
    # The decoded value is then rounded to float32: allow that one rounding on top of s/2.
    bound = scale / 2 + np.spacing(np.abs(array).astype(np.float32))
    assert np.all(np.abs(decoded.astype(np.float64) - array) <= bound)
    (sent_scale,) = struct.unpack("<f", bytes(payload[:4]))
    assert sent_scale == pytest.approx(scale)


def test_int8_zero_tensor_decodes_to_zeros() -> None:
    codec = get_codec("int8")
    array = np.zeros((3, 3), dtype=np.float32)
    payload = codec.encode(array)
    assert struct.unpack("<f", bytes(payload[:4]))[0] == 0.0
    np.testing.assert_array_equal(codec.decode(payload, np.float32, (3, 3)), array)


def test_int8_keeps_the_extremes_exactly_signed() -> None:
    codec = get_codec("int8")
    array = np.array([-2.0, 0.0, 1.0, 2.0], dtype=np.float32)
    decoded = codec.decode(codec.encode(array), np.float32, (4,))
    assert decoded[0] == pytest.approx(-2.0) and decoded[3] == pytest.approx(2.0)


@pytest.mark.parametrize("ratio", [0.01, 0.1, 0.37, 1.0])
def test_topk_keeps_exactly_the_largest_entries(ratio: float) -> None:
    array = RNG.normal(size=(30, 20)).astype(np.float32)
    codec = get_codec("topk", ratio=ratio)
    payload = codec.encode(array)
    decoded = codec.decode(payload, np.float32, array.shape)
    k = max(1, math.ceil(ratio * array.size))
    assert len(payload) == 8 + k * (4 + 4)
    largest = np.argsort(-np.abs(array).ravel(), kind="stable")[:k]
    kept = np.flatnonzero(decoded.ravel())
    assert set(kept.tolist()) == set(largest.tolist())
    np.testing.assert_array_equal(decoded.ravel()[largest], array.ravel()[largest])
    dropped = np.setdiff1d(np.arange(array.size), largest)
    assert not decoded.ravel()[dropped].any()


def test_topk_error_feedback_accumulates_what_was_dropped() -> None:
    codec = get_codec("topk", ratio=0.25)
    feedback = ErrorFeedback(codec)
    first = RNG.normal(size=(8, 8)).astype(np.float32)
    sent_first = codec.decode(feedback.encode("w", first), np.float32, first.shape)
    residual = feedback.residual("w")
    assert residual is not None
    np.testing.assert_allclose(residual, first - sent_first)
    # The dropped entries are exactly the residual; the kept ones leave nothing behind.
    kept = sent_first != 0
    assert not residual[kept].any()
    np.testing.assert_array_equal(residual[~kept], first[~kept])

    second = RNG.normal(size=(8, 8)).astype(np.float32)
    sent_second = codec.decode(feedback.encode("w", second), np.float32, second.shape)
    compensated = second + residual
    kept_second = np.argsort(-np.abs(compensated).ravel(), kind="stable")[:16]
    np.testing.assert_array_equal(
        sent_second.ravel()[kept_second], compensated.ravel()[kept_second]
    )
    # Nothing is lost: what was sent plus what is still owed equals what was given.
    total_sent = sent_first + sent_second
    np.testing.assert_allclose(total_sent + feedback.residual("w"), first + second, atol=1e-6)


def test_error_feedback_rollback_owes_an_undelivered_update_again() -> None:
    feedback = ErrorFeedback(get_codec("topk", ratio=0.5))
    feedback.encode("w", np.array([4.0, 1.0], dtype=np.float32))
    feedback.encode("w", np.array([0.0, 1.0], dtype=np.float32))
    # Second payload: compensated [0, 2] -> sends the 2; refused, so all of [0, 2] is owed.
    feedback.rollback()
    np.testing.assert_array_equal(feedback.residual("w"), [0.0, 2.0])


def test_error_feedback_keeps_tensors_apart() -> None:
    feedback = ErrorFeedback(get_codec("topk", ratio=0.5))
    feedback.encode("a", np.array([1.0, 2.0], dtype=np.float32))
    feedback.encode("b", np.array([5.0, 3.0], dtype=np.float32))
    np.testing.assert_array_equal(feedback.residual("a"), [1.0, 0.0])
    np.testing.assert_array_equal(feedback.residual("b"), [0.0, 3.0])
    feedback.reset()
    assert feedback.residual("a") is None


@pytest.mark.parametrize("ratio", [0, -0.1, 1.5, "many", None])
def test_topk_refuses_a_bad_ratio(ratio: object) -> None:
    with pytest.raises(CodecError, match="ratio"):
        get_codec("topk", ratio=ratio)  # type: ignore[arg-type]


def test_unknown_codec_name_lists_the_known_ones() -> None:
    with pytest.raises(CodecError, match=r"unknown compression algorithm 'zip'.*int8"):
        get_codec("zip")


def test_unexpected_codec_parameter_is_reported() -> None:
    with pytest.raises(CodecError, match="bad parameters for codec 'int8'"):
        get_codec("int8", ratio=0.5)


@pytest.mark.parametrize("name", ["none", "fp16", "int8", "topk"])
def test_truncated_payload_is_refused(name: str) -> None:
    codec = get_codec(name)
    array = RNG.normal(size=(10,)).astype(np.float32)
    payload = bytes(codec.encode(array))
    with pytest.raises(CodecError, match="corrupt"):
        codec.decode(payload[:-1], np.float32, array.shape)


def test_payload_for_another_shape_is_refused() -> None:
    codec = get_codec("int8")
    payload = codec.encode(np.ones(10, dtype=np.float32))
    with pytest.raises(CodecError, match=r"shape \[11\]"):
        codec.decode(payload, np.float32, (11,))


def test_topk_index_out_of_range_is_refused() -> None:
    payload = struct.pack("<Q", 1) + np.array([12], "<u4").tobytes() + np.float32(1).tobytes()
    with pytest.raises(CodecError, match="out of range"):
        get_codec("topk").decode(payload, np.float32, (10,))


def test_int8_corrupt_scale_is_refused() -> None:
    payload = struct.pack("<f", float("nan")) + bytes(4)
    with pytest.raises(CodecError, match="scale"):
        get_codec("int8").decode(payload, np.float32, (4,))


def test_lossy_codecs_refuse_integer_tensors() -> None:
    with pytest.raises(CodecError, match="cannot encode int32"):
        get_codec("int8").encode(np.arange(4, dtype=np.int32))


def test_unsupported_dtype_is_refused() -> None:
    with pytest.raises(CodecError, match="complex64"):
        get_codec("none").encode(np.zeros(2, dtype=np.complex64))
    with pytest.raises(CodecError, match="numpy array"):
        get_codec("none").encode([1.0, 2.0])  # type: ignore[arg-type]
