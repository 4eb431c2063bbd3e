"""Hot model update: poll the model config the LC writes and hand each new model over.

The config (``MODEL_HOT_UPDATE_CONFIG``) is upstream Sedna's
``{"model_config": {"model_path": "...", "model_update_time": "..."}}``. Every
``MODEL_POLL_PERIOD_SECONDS`` the file is read; a ``model_update_time`` not seen before calls
``on_update(model_path, update_time)``, round after round (upstream's second update never fires,
#381). A config that cannot be read is logged and retried on the next poll.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

from sedna.common.log import get_logger

LOG = get_logger("incremental_learning.hot_update")

DEFAULT_POLL_PERIOD_SECONDS = 60.0


def read_model_config(path: Path) -> tuple[str, str] | None:
    """``(model_path, model_update_time)`` of a config file; None when absent or malformed."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        config = document["model_config"]
        return str(config["model_path"]), str(config["model_update_time"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        LOG.warning("model config unreadable", extra={"path": str(path), "error": str(error)})
        return None


def poll_period(raw: str | None) -> float:
    """``MODEL_POLL_PERIOD_SECONDS`` as seconds; 60 when unset or not a positive number."""
    try:
        value = float(raw) if raw else DEFAULT_POLL_PERIOD_SECONDS
    except ValueError:
        value = DEFAULT_POLL_PERIOD_SECONDS
    return value if value > 0 else DEFAULT_POLL_PERIOD_SECONDS


class ModelHotUpdater:
    """A daemon thread that calls ``on_update`` for every new model the config names."""

    def __init__(
        self,
        config_path: Path,
        on_update: Callable[[str, str], None],
        period: float = DEFAULT_POLL_PERIOD_SECONDS,
    ) -> None:
        self.config_path = Path(config_path)
        self.period = period
        self._on_update = on_update
        self._last: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-hot-update", daemon=True)

    def start(self) -> ModelHotUpdater:
        """Start polling (the first poll is at once)."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.period + 1)

    def poll(self) -> bool:
        """Read the config once; True when it named a model not seen before."""
        found = read_model_config(self.config_path)
        if found is None or found[1] == self._last:
            return False
        self._last = found[1]
        try:
            self._on_update(*found)
        except Exception:
            LOG.exception("hot update callback failed", extra={"model_path": found[0]})
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.period)
