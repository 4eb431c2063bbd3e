"""Every benchmark the README lists starts as the README runs it (a script, not a module)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LISTED = sorted(set(re.findall(r"python (benchmarks/\w+\.py)", (ROOT / "README.md").read_text())))


def test_the_readme_lists_benchmarks() -> None:
    assert "benchmarks/control_plane.py" in LISTED and "benchmarks/scale.py" in LISTED


@pytest.mark.parametrize("script", LISTED)
def test_a_listed_benchmark_starts_as_a_script(script: str) -> None:
    result = subprocess.run(
        [sys.executable, script, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:"), result.stdout[:200]
