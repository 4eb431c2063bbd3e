"""Compile ``<name>.proto`` into ``<name>_pb2.py`` / ``<name>_pb2_grpc.py`` next to it.

The generated modules are build products (ignored by git): they are produced here, at first
import, with ``grpc_tools.protoc`` whenever they are missing or older than the ``.proto``.
protoc writes into a private temporary directory inside this package and each file is then
moved into place with :func:`os.replace`, so two processes importing at the same time each see
either no file or a complete one. When the package directory is read-only (an installed
package owned by another user), :func:`load` compiles in memory with
``grpc.protos_and_services`` instead.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from types import ModuleType

LOG = logging.getLogger("sedna.proto")

PACKAGE_DIR = Path(__file__).resolve().parent
# The directory holding the top-level ``sedna`` package: protoc's include root, so the
# generated code imports ``from sedna.proto import <name>_pb2``.
INCLUDE_ROOT = PACKAGE_DIR.parent.parent
PACKAGE = "sedna.proto"


class ProtoBuildError(RuntimeError):
    """protoc failed on a ``.proto`` file of the worker library."""


def _proto_path(name: str) -> Path:
    # The source may be a symlink to the repository's proto/ directory (development checkout);
    # Path.stat follows it, so staleness is judged against the real source.
    return PACKAGE_DIR / f"{name}.proto"


def _generated_paths(name: str) -> tuple[Path, Path]:
    return PACKAGE_DIR / f"{name}_pb2.py", PACKAGE_DIR / f"{name}_pb2_grpc.py"


def is_stale(name: str) -> bool:
    """Whether the generated modules of ``name`` are missing or older than the ``.proto``."""
    source = _proto_path(name)
    if not source.exists():
        raise ProtoBuildError(f"{source} is missing; the worker library was installed without it")
    source_mtime = source.stat().st_mtime
    for path in _generated_paths(name):
        if not path.exists() or path.stat().st_mtime < source_mtime:
            return True
    return False


def generate(name: str) -> None:
    """Run protoc for ``name`` and move the two modules into the package atomically."""
    from grpc_tools import protoc  # build-time tool, needed only when (re)generating

    relative = f"{PACKAGE.replace('.', '/')}/{name}.proto"
    workdir = Path(tempfile.mkdtemp(prefix=".protoc-", dir=PACKAGE_DIR))
    try:
        args = [
            "grpc_tools.protoc",
            f"-I{INCLUDE_ROOT}",
            f"--python_out={workdir}",
            f"--grpc_python_out={workdir}",
            relative,
        ]
        status = protoc.main(args)
        if status != 0:
            raise ProtoBuildError(f"protoc failed with status {status} on {relative}")
        out_dir = workdir / PACKAGE.replace(".", "/")
        # Messages first: the services module imports them.
        for target in _generated_paths(name):
            os.replace(out_dir / target.name, target)
        LOG.info("generated gRPC code", extra={"proto": relative})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def load(name: str) -> tuple[ModuleType, ModuleType]:
    """The ``(messages, services)`` modules of ``name``, generating them first if needed."""
    try:
        if is_stale(name):
            generate(name)
    except OSError as error:
        if os.access(PACKAGE_DIR, os.W_OK):
            raise
        LOG.info(
            "package directory is read-only; compiling the proto in memory",
            extra={"proto": name, "error": str(error)},
        )
        import grpc

        return grpc.protos_and_services(f"{PACKAGE.replace('.', '/')}/{name}.proto")
    importlib.invalidate_caches()
    messages = importlib.import_module(f"{PACKAGE}.{name}_pb2")
    services = importlib.import_module(f"{PACKAGE}.{name}_pb2_grpc")
    return messages, services
