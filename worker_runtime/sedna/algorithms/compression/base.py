"""The codec interface: a numpy array to bytes and back, registered by name."""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar, TypeVar

import numpy as np

from sedna.common.class_factory import ClassFactory, ClassType
from sedna.common.errors import SednaError, UnknownAlgorithmError

Payload = bytes | bytearray | memoryview

# Dtypes that may travel (always little-endian on the wire).
SUPPORTED_DTYPES: frozenset[str] = frozenset(
    {
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
    }
)


class CodecError(SednaError, ValueError):
    """A codec was misconfigured, given an unsupported tensor, or handed a corrupt payload."""


@functools.lru_cache(maxsize=128)
def wire_dtype(dtype: np.dtype | str) -> np.dtype:
    """The little-endian numpy dtype for ``dtype``; :class:`CodecError` if it cannot travel.

    Cached: every tensor of every push and pull asks, and numpy's ``dtype.name`` is slow.
    """
    try:
        resolved = np.dtype(dtype)
    except TypeError as error:
        raise CodecError(f"unknown dtype {dtype!r}") from error
    if resolved.name not in SUPPORTED_DTYPES:
        raise CodecError(
            f"dtype {resolved.name!r} cannot be exchanged; supported: "
            + ", ".join(sorted(SUPPORTED_DTYPES))
        )
    return resolved.newbyteorder("<")


@functools.lru_cache(maxsize=128)
def wire_dtype_name(dtype: np.dtype | str) -> str:
    """The name of ``wire_dtype(dtype)`` (e.g. ``"float32"``), cached like it."""
    return wire_dtype(dtype).name


def element_count(shape: tuple[int, ...]) -> int:
    """Number of elements of ``shape`` (1 for a scalar)."""
    if any(dim < 0 for dim in shape):
        raise CodecError(f"negative dimension in shape {shape}")
    return math.prod(shape)


class BaseCodec(ABC):
    """Encodes one tensor to bytes and decodes it given its dtype and shape."""

    name: ClassVar[str]
    lossy: ClassVar[bool] = True
    # Whether a client should keep what the codec dropped and add it to the next update.
    error_feedback: ClassVar[bool] = False
    # Whether the codec only makes sense for differences to a reference model (sparsifiers
    # would zero most of a model sent whole), so a client without one sends exact values.
    differences_only: ClassVar[bool] = False

    def supports(self, dtype: np.dtype) -> bool:
        """Whether tensors of ``dtype`` can use this codec (lossy codecs take floats only)."""
        return not self.lossy or np.issubdtype(dtype, np.floating)

    @abstractmethod
    def encode(self, array: np.ndarray) -> Payload:
        """The payload of ``array``."""

    @abstractmethod
    def decode(self, payload: Payload, dtype: np.dtype | str, shape: tuple[int, ...]) -> np.ndarray:
        """The tensor of ``dtype`` and ``shape`` held by ``payload``; :class:`CodecError` when
        the payload does not fit them."""

    @abstractmethod
    def size_bounds(self, dtype: np.dtype | str, shape: tuple[int, ...]) -> tuple[int, int]:
        """Smallest and largest valid payload size in bytes (equal for fixed-size codecs)."""

    def _check_input(self, array: np.ndarray) -> np.ndarray:
        if not isinstance(array, np.ndarray):
            raise CodecError(f"{self.name} codec expects a numpy array, got {type(array).__name__}")
        dtype = wire_dtype(array.dtype)
        if not self.supports(dtype):
            raise CodecError(f"{self.name} codec cannot encode {dtype.name} tensors")
        return np.ascontiguousarray(array, dtype=dtype)


_CodecClass = TypeVar("_CodecClass", bound=type[BaseCodec])


def register_codec(name: str) -> Callable[[_CodecClass], _CodecClass]:
    """Class decorator registering a codec under ``name`` (sets ``cls.name``)."""

    def decorator(cls: _CodecClass) -> _CodecClass:
        cls.name = name
        ClassFactory.register_cls(cls, ClassType.COMPRESSION, alias=name)
        return cls

    return decorator


def get_codec(name: str, **params: float) -> BaseCodec:
    """A codec instance by registered name, e.g. ``get_codec("topk", ratio=0.01)``."""
    try:
        cls = ClassFactory.get_cls(ClassType.COMPRESSION, name)
    except UnknownAlgorithmError as error:
        raise CodecError(str(error)) from None
    try:
        return cls(**params)
    except TypeError as error:
        raise CodecError(f"bad parameters for codec {name!r}: {error}") from None


def codec_names() -> list[str]:
    """Names of the registered codecs."""
    return ClassFactory.names(ClassType.COMPRESSION)
