"""A watch of one kind of Sedna object through the API, for benchmarks that time status changes.

`ObjectWatch` lists the objects once, then follows every change from that list's
resourceVersion with the official client's watch, calling ``note(obj)`` for each object it
sees; after a failure it lists and watches again, so a run survives a hiccup of the API server.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client, watch

__all__ = ["ObjectWatch"]

log = logging.getLogger(__name__)

GROUP, VERSION, NAMESPACE = "sedna.io", "v1alpha1", "default"


class ObjectWatch:
    """Calls ``note`` with every object of ``plural`` in ``namespace`` as listed, then with
    each object every watch event carries (on a thread of its own)."""

    def __init__(
        self,
        api: client.CustomObjectsApi,
        plural: str,
        note: Callable[[dict[str, Any]], None],
        *,
        namespace: str = NAMESPACE,
        name: str = "bench-watch",
    ) -> None:
        self._api = api
        self._plural = plural
        self._note = note
        self._namespace = namespace
        self._watch = watch.Watch()
        self._stop = threading.Event()
        self.ready = threading.Event()  # the first list was noted
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self, timeout: float = 60.0) -> None:
        """Start watching; returns once the objects listed at the start were noted."""
        self._thread.start()
        if not self.ready.wait(timeout):
            raise RuntimeError(f"the watch of {self._plural} did not start in {timeout:g} s")

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        self._watch.stop()

    def _run(self) -> None:
        args = (GROUP, VERSION, self._namespace, self._plural)
        while not self._stop.is_set():
            try:
                listed = self._api.list_namespaced_custom_object(*args)
                for item in listed.get("items", []):
                    self._note(item)
                self.ready.set()
                for event in self._watch.stream(
                    self._api.list_namespaced_custom_object,
                    *args,
                    resource_version=listed["metadata"]["resourceVersion"],
                    timeout_seconds=600,
                ):
                    if self._stop.is_set():
                        return
                    self._note(event["object"])
            except Exception as exc:  # list and watch again
                if not self._stop.is_set():
                    log.warning("watch of %s failed: %s", self._plural, exc)
                    time.sleep(0.2)
