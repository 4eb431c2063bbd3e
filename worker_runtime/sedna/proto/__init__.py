"""gRPC contracts of the worker library, compiled from their ``.proto`` at first use.

``federated.proto`` here is the package copy of the repository's ``proto/federated.proto`` (a
symlink in a checkout; a regular file in an installed package, shipped as package data through
the ``*.proto`` pattern in ``pyproject.toml``). Use::

    from sedna.proto import federated
    pb2, pb2_grpc = federated()
"""

from __future__ import annotations

import functools
import threading
from types import ModuleType

from sedna.proto._codegen import ProtoBuildError, load

__all__ = ["ProtoBuildError", "federated"]

_lock = threading.Lock()


@functools.cache
def _federated() -> tuple[ModuleType, ModuleType]:
    return load("federated")


def federated() -> tuple[ModuleType, ModuleType]:
    """``(federated_pb2, federated_pb2_grpc)`` of the weight exchange service."""
    with _lock:
        return _federated()
