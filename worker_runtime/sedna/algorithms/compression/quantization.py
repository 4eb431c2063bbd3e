"""Lossless and quantizing codecs: ``none``, ``fp16`` and ``int8``."""

from __future__ import annotations

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

_FP16_MAX = float(np.finfo(np.float16).max)
_SCALE = struct.Struct("<f")


def _check_size(codec: str, payload: Payload, expected: int, shape: tuple[int, ...]) -> None:
    size = memoryview(payload).nbytes
    if size != expected:
        raise CodecError(
            f"corrupt {codec} payload: {size} bytes for shape {list(shape)}, expected {expected}"
        )


def _check_finite(codec: str, array: np.ndarray) -> None:
    if not np.isfinite(array).all():
        raise CodecError(f"{codec} codec cannot encode a tensor holding NaN or infinity")


@register_codec("none")
class NoCompression(BaseCodec):
    """The tensor's raw little-endian bytes (exact)."""

    lossy = False

    def encode(self, array: np.ndarray) -> Payload:
        """A zero-copy view of the tensor's bytes."""
        contiguous = self._check_input(array)
        return memoryview(contiguous.reshape(-1)).cast("B")

    def decode(self, payload: Payload, dtype: np.dtype | str, shape: tuple[int, ...]) -> np.ndarray:
        """The tensor over ``payload`` (no copy; writable when ``payload`` is)."""
        resolved = wire_dtype(dtype)
        count = element_count(shape)
        _check_size(self.name, payload, count * resolved.itemsize, shape)
        return np.frombuffer(payload, dtype=resolved, count=count).reshape(shape)

    def size_bounds(self, dtype: np.dtype | str, shape: tuple[int, ...]) -> tuple[int, int]:
        """Exactly the raw size."""
        size = element_count(shape) * wire_dtype(dtype).itemsize
        return size, size


@register_codec("fp16")
class Float16Codec(BaseCodec):
    """IEEE half precision: relative error at most 2**-11 for values in fp16's normal range."""

    def encode(self, array: np.ndarray) -> Payload:
        """The tensor as little-endian float16; values beyond +-65504 are refused."""
        contiguous = self._check_input(array)
        _check_finite(self.name, contiguous)
        if contiguous.size and float(np.max(np.abs(contiguous))) > _FP16_MAX:
            raise CodecError(f"fp16 codec cannot encode values beyond +-{_FP16_MAX:g}")
        return contiguous.astype("<f2").tobytes()

    def decode(self, payload: Payload, dtype: np.dtype | str, shape: tuple[int, ...]) -> np.ndarray:
        """The float16 values widened to ``dtype``."""
        resolved = wire_dtype(dtype)
        count = element_count(shape)
        _check_size(self.name, payload, count * 2, shape)
        half = np.frombuffer(payload, dtype="<f2", count=count)
        return half.astype(resolved).reshape(shape)

    def size_bounds(self, dtype: np.dtype | str, shape: tuple[int, ...]) -> tuple[int, int]:
        """Two bytes per element."""
        wire_dtype(dtype)
        size = element_count(shape) * 2
        return size, size


@register_codec("int8")
class Int8Codec(BaseCodec):
    """Symmetric per-tensor int8: ``q = rint(x / s)``, ``s = max|x| / 127``; error <= s/2.

    Payload: the scale as little-endian float32, then one signed byte per element. An all-zero
    tensor has scale 0 and decodes to zeros.
    """

    def encode(self, array: np.ndarray) -> Payload:
        """Scale and quantized values."""
        contiguous = self._check_input(array)
        _check_finite(self.name, contiguous)
        peak = float(np.max(np.abs(contiguous))) if contiguous.size else 0.0
        scale = np.float32(peak / 127.0)
        if scale == 0.0:
            quantized = np.zeros(contiguous.size, dtype=np.int8)
        else:
            # Divide in float64 by the float32 scale actually sent, so the bound holds exactly.
            ratio = contiguous.reshape(-1).astype(np.float64) / np.float64(scale)
            quantized = np.clip(np.rint(ratio), -127, 127).astype(np.int8)
        return _SCALE.pack(scale) + quantized.tobytes()

    def decode(self, payload: Payload, dtype: np.dtype | str, shape: tuple[int, ...]) -> np.ndarray:
        """``q * s`` in ``dtype``."""
        resolved = wire_dtype(dtype)
        count = element_count(shape)
        _check_size(self.name, payload, _SCALE.size + count, shape)
        (scale,) = _SCALE.unpack_from(payload, 0)
        if not np.isfinite(scale) or scale < 0:
            raise CodecError(f"corrupt int8 payload: scale {scale!r} is not a finite value >= 0")
        quantized = np.frombuffer(payload, dtype=np.int8, count=count, offset=_SCALE.size)
        return (quantized.astype(np.float64) * scale).astype(resolved).reshape(shape)

    def size_bounds(self, dtype: np.dtype | str, shape: tuple[int, ...]) -> tuple[int, int]:
        """Four bytes of scale plus one per element."""
        wire_dtype(dtype)
        size = _SCALE.size + element_count(shape)
        return size, size
