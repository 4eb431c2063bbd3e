"""A train worker for the incremental learning recovery tests: the example's ``train.py``,
steered by files in ``MARKER_DIR``.

Every start appends ``MODEL_URL`` to ``starts.txt``. If ``fail-next`` exists it is removed and
the worker exits 0 without reporting anything; while ``hold`` exists the worker waits (a round
held mid-way, for killing the LC or the GM under it); then the real ``train.py`` runs.
"""

from __future__ import annotations

import os
import runpy
import sys
import time
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "incremental_learning"


def main() -> None:
    markers = Path(os.environ["MARKER_DIR"])
    with (markers / "starts.txt").open("a") as handle:
        handle.write(
            f"{os.environ.get('MODEL_URL')} {os.environ.get('WORKER_NAME')} {os.getpid()}\n"
        )
    fail = markers / "fail-next"
    if fail.exists():
        fail.unlink()
        sys.exit(0)  # "completed" without a model: the stage must fail
    while (markers / "hold").exists():
        time.sleep(0.1)
    sys.path.insert(0, str(EXAMPLE))
    sys.argv = [str(EXAMPLE / "train.py")]
    runpy.run_path(str(EXAMPLE / "train.py"), run_name="__main__")


if __name__ == "__main__":
    main()
