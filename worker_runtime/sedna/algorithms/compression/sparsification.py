"""Top-k sparsification: only the largest-magnitude entries travel, as indices and values."""

from __future__ import annotations

import math
import struct

import numpy as np

from sedna.algorithms.compression.base import (
    BaseCodec,
    CodecError,
    Payload,
    element_count,
    register_codec,
    wire_dtype,
)

_COUNT = struct.Struct("<Q")
_INDEX = np.dtype("<u4")
_MAX_ELEMENTS = 2**32


@register_codec("topk")
class TopKCodec(BaseCodec):
    """Keeps ``ceil(ratio * n)`` entries of largest magnitude (at least one of a non-empty tensor).

    Payload: entry count k (uint64), k sorted uint32 indices, k values in the tensor's dtype;
    all little-endian. Dropped entries decode as zero; pair the codec with
    :class:`~sedna.algorithms.compression.ErrorFeedback` so they are sent later instead of lost.
    """

    error_feedback = True
    differences_only = True

    def __init__(self, ratio: float = 0.1) -> None:
        try:
            ratio = float(ratio)
        except (TypeError, ValueError):
            raise CodecError(f"topk ratio must be a number in (0, 1], got {ratio!r}") from None
        if not 0.0 < ratio <= 1.0:
            raise CodecError(f"topk ratio must be in (0, 1], got {ratio}")
        self.ratio = ratio

    def kept(self, count: int) -> int:
        """How many of ``count`` entries are kept."""
        return 0 if count == 0 else min(count, max(1, math.ceil(self.ratio * count)))

    def encode(self, array: np.ndarray) -> Payload:
        """Count, indices and values of the kept entries."""
        flat = self._check_input(array).reshape(-1)
        if flat.size >= _MAX_ELEMENTS:
            raise CodecError(f"topk codec supports tensors below 2**32 elements, got {flat.size}")
        k = self.kept(flat.size)
        if k == flat.size:
            indices = np.arange(k, dtype=_INDEX)
        else:
            indices = np.sort(np.argpartition(np.abs(flat), flat.size - k)[flat.size - k :])
        return (
            _COUNT.pack(k)
            + indices.astype(_INDEX, copy=False).tobytes()
            + flat[indices].astype(flat.dtype.newbyteorder("<"), copy=False).tobytes()
        )

    def decode(self, payload: Payload, dtype: np.dtype | str, shape: tuple[int, ...]) -> np.ndarray:
        """A dense tensor with the sent entries set and zeros elsewhere."""
        resolved = wire_dtype(dtype)
        count = element_count(shape)
        size = memoryview(payload).nbytes
        if size < _COUNT.size:
            raise CodecError(f"corrupt topk payload: {size} bytes, shorter than its header")
        (k,) = _COUNT.unpack_from(payload, 0)
        expected = _COUNT.size + k * (_INDEX.itemsize + resolved.itemsize)
        if k > count or size != expected:
            raise CodecError(
                f"corrupt topk payload: {size} bytes announcing {k} of {count} entries "
                f"(expected {expected} bytes)"
            )
        indices = np.frombuffer(payload, dtype=_INDEX, count=k, offset=_COUNT.size)
        values = np.frombuffer(
            payload, dtype=resolved, count=k, offset=_COUNT.size + k * _INDEX.itemsize
        )
        if k and (int(indices.max()) >= count or np.any(np.diff(indices.astype(np.int64)) <= 0)):
            raise CodecError("corrupt topk payload: indices out of range or not strictly sorted")
        dense = np.zeros(count, dtype=resolved)
        dense[indices] = values
        return dense.reshape(shape)

    def size_bounds(self, dtype: np.dtype | str, shape: tuple[int, ...]) -> tuple[int, int]:
        """Header only (empty tensor) up to every entry kept."""
        # A sender may use another ratio, so only the extremes bind the receiver.
        itemsize = wire_dtype(dtype).itemsize
        return _COUNT.size, _COUNT.size + element_count(shape) * (_INDEX.itemsize + itemsize)
