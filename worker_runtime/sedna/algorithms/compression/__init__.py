"""Weight compression codecs, registered by name: ``none``, ``fp16``, ``int8``, ``topk``.

``get_codec(name, **params)`` returns a codec whose ``encode(array) -> bytes`` and
``decode(payload, dtype, shape) -> array`` move one tensor; :class:`ErrorFeedback` keeps what a
lossy codec dropped on the client and adds it to the next round's update.
"""

from sedna.algorithms.compression.base import (
    SUPPORTED_DTYPES,
    BaseCodec,
    CodecError,
    Payload,
    codec_names,
    get_codec,
    register_codec,
    wire_dtype,
    wire_dtype_name,
)
from sedna.algorithms.compression.error_feedback import ErrorFeedback
from sedna.algorithms.compression.quantization import Float16Codec, Int8Codec, NoCompression
from sedna.algorithms.compression.sparsification import TopKCodec

__all__ = [
    "SUPPORTED_DTYPES",
    "BaseCodec",
    "CodecError",
    "ErrorFeedback",
    "Float16Codec",
    "Int8Codec",
    "NoCompression",
    "Payload",
    "TopKCodec",
    "codec_names",
    "get_codec",
    "register_codec",
    "wire_dtype",
    "wire_dtype_name",
]
