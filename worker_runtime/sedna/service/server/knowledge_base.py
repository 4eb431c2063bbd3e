"""``KBServer`` with upstream's arguments, serving the project's knowledge base (``kb``)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any


class KBServer:
    """``KBServer(host, http_port, workers, save_dir).start()`` as upstream's ``run_kb.py``
    calls it; ``start`` serves until interrupted. The service itself is the ``kb`` package
    (``sedna kb``); importing it here is deferred so workers never load it."""

    def __init__(
        self, host: str = "127.0.0.1", http_port: int = 8080, workers: int = 1, save_dir: str = ""
    ) -> None:
        try:
            from kb import KBServer as Service
            from kb import KBSettings
        except ModuleNotFoundError as error:
            raise ImportError(
                "KBServer needs the knowledge base service (the kb package of this project, "
                f"run by `sedna kb`), which is not installed: {error}",
                name="KBServer",
            ) from None
        settings: dict[str, Any] = {"host": host, "port": int(http_port)}
        if save_dir:
            settings["data_dir"] = Path(save_dir)
        self.workers = workers
        self.service = Service(KBSettings(**settings))

    @property
    def port(self) -> int:
        """The bound port."""
        return self.service.port

    def start(self, block: bool = True) -> KBServer:
        """Serve; blocks until interrupted unless ``block`` is false."""
        self.service.start()
        if block:
            try:
                threading.Event().wait()
            except KeyboardInterrupt:
                pass
            finally:
                self.stop()
        return self

    def stop(self) -> None:
        """Stop serving."""
        stop = getattr(self.service, "stop", None)
        if callable(stop):
            stop()
