"""The generated gRPC code is built from the .proto at first import, atomically."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import sedna.proto

IMPORT = """
import sys
from sedna.proto import federated
pb2, services = federated()
assert pb2.__file__.startswith(sys.argv[1]), pb2.__file__
assert services.WeightExchangeStub
print(pb2.PushHeader(job="ok").job)
"""


def _package_copy(root: Path) -> Path:
    """A copy of ``sedna.proto`` (with the real .proto, never generated code) under ``root``."""
    source = Path(sedna.proto.__file__).parent
    target = root / "sedna" / "proto"
    target.mkdir(parents=True)
    (root / "sedna" / "__init__.py").write_text('"""Stand-in package for the test."""\n')
    for name in ("__init__.py", "_codegen.py", "federated.proto"):
        shutil.copyfile(source / name, target / name)
    return target


def _import_in(root: Path, count: int) -> list[subprocess.CompletedProcess[str]]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    running = [
        subprocess.Popen(
            [sys.executable, "-c", IMPORT, str(root)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    return [
        subprocess.CompletedProcess(p.args, p.wait(timeout=60), *p.communicate()) for p in running
    ]


def test_two_processes_generate_the_code_at_once(tmp_path: Path) -> None:
    package = _package_copy(tmp_path)
    for result in _import_in(tmp_path, 2):
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "ok"
    generated = sorted(path.name for path in package.iterdir())
    assert {"federated_pb2.py", "federated_pb2_grpc.py"} <= set(generated)
    assert not [name for name in generated if name.startswith(".protoc-")]


def test_code_older_than_the_proto_is_regenerated(tmp_path: Path) -> None:
    package = _package_copy(tmp_path)
    (result,) = _import_in(tmp_path, 1)
    assert result.returncode == 0, result.stderr
    messages = package / "federated_pb2.py"
    os.utime(messages, (1_000_000, 1_000_000))
    (result,) = _import_in(tmp_path, 1)
    assert result.returncode == 0, result.stderr
    assert messages.stat().st_mtime > (package / "federated.proto").stat().st_mtime


def test_broken_proto_is_reported(tmp_path: Path) -> None:
    package = _package_copy(tmp_path)
    (package / "federated.proto").write_text('syntax = "proto3";\nmessage Broken {\n')
    (result,) = _import_in(tmp_path, 1)
    assert result.returncode != 0
    assert "protoc failed" in result.stderr
