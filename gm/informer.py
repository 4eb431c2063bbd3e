"""Informers: list + watch one resource type through the official client, keep a local cache.

An informer lists, then watches from the list's resourceVersion; when the server says the
version is too old (410 Gone) it lists again and reports what changed meanwhile, deletions
included. Handlers only enqueue keys: reconcilers read the cache, never the events.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

log = logging.getLogger(__name__)

Obj = dict[str, Any]
EventHandler = Callable[[str, Obj], None]  # (event type ADDED/MODIFIED/DELETED, object)
ListFunc = Callable[..., Any]


def object_key(obj: Obj) -> str:
    """``namespace/name`` (or ``name`` for cluster-scoped objects)."""
    meta = obj.get("metadata", {})
    namespace = meta.get("namespace")
    return f"{namespace}/{meta['name']}" if namespace else meta["name"]


class Informer:
    """Keeps an up-to-date cache of one resource type and calls a handler on every change."""

    def __init__(
        self,
        name: str,
        list_func: ListFunc,
        handler: EventHandler,
        api_client: client.ApiClient,
        watch_timeout: int = 300,
        retry_delay: float = 1.0,
    ) -> None:
        self.name = name
        self._list = list_func
        self._handler = handler
        self._api_client = api_client
        self._watch_timeout = watch_timeout
        self._retry_delay = retry_delay
        self._cache: dict[str, Obj] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watch: watch.Watch | None = None
        self.synced = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"informer-{name}", daemon=True)

    def start(self) -> None:
        """Start listing and watching in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()

    def get(self, key: str) -> Obj | None:
        """The cached object for ``namespace/name``, or ``None``."""
        with self._lock:
            return self._cache.get(key)

    def list(self) -> list[Obj]:
        """Every cached object."""
        with self._lock:
            return list(self._cache.values())

    def observe(self, obj: Obj) -> None:
        """Cache ``obj`` as returned by the GM's own write, unless the cache already has a newer
        version: the next write then carries its resourceVersion without waiting for the watch
        (client-go's mutation cache). No handler is called; the watch event follows."""
        key = object_key(obj)
        with self._lock:
            cached = self._cache.get(key)
            if cached is None or _newer(obj, cached):
                self._cache[key] = obj

    def _to_dict(self, obj: Any) -> Obj:
        return obj if isinstance(obj, dict) else self._api_client.sanitize_for_serialization(obj)

    def _relist(self) -> str:
        result = self._to_dict(self._list())
        fresh = {object_key(item): item for item in result.get("items", [])}
        with self._lock:
            old = self._cache
            self._cache = dict(fresh)
        for key, obj in old.items():
            if key not in fresh:
                self._handler("DELETED", obj)
        for key, obj in fresh.items():
            previous = old.get(key)
            if previous is None:
                self._handler("ADDED", obj)
            elif previous["metadata"].get("resourceVersion") != obj["metadata"].get(
                "resourceVersion"
            ):
                self._handler("MODIFIED", obj)
        self.synced.set()
        return result.get("metadata", {}).get("resourceVersion", "")

    def _apply(self, event_type: str, obj: Obj) -> None:
        key = object_key(obj)
        with self._lock:
            if event_type == "DELETED":
                self._cache.pop(key, None)
            elif key not in self._cache or not _newer(self._cache[key], obj):
                self._cache[key] = obj
        self._handler(event_type, obj)

    def _watch_from(self, resource_version: str) -> str:
        """Watch until the stream ends; return the last resourceVersion seen."""
        self._watch = watch.Watch()
        for event in self._watch.stream(
            self._list,
            resource_version=resource_version,
            timeout_seconds=self._watch_timeout,
            allow_watch_bookmarks=True,
        ):
            if self._stop.is_set():
                break
            obj = self._to_dict(event["object"])
            resource_version = obj.get("metadata", {}).get("resourceVersion", resource_version)
            if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                self._apply(event["type"], obj)
        return resource_version

    def _run(self) -> None:
        resource_version = ""
        while not self._stop.is_set():
            try:
                if not resource_version:
                    resource_version = self._relist()
                resource_version = self._watch_from(resource_version)
            except ApiException as exc:
                if exc.status == 410:
                    log.info("watch expired, listing again", extra={"informer": self.name})
                else:
                    log.warning(
                        "list/watch failed: %s %s",
                        exc.status,
                        exc.reason,
                        extra={"informer": self.name},
                    )
                    self._stop.wait(self._retry_delay)
                resource_version = ""
            except (HTTPError, OSError, ValueError) as exc:
                if self._stop.is_set():
                    return
                log.warning("list/watch failed: %s", exc, extra={"informer": self.name})
                self._stop.wait(self._retry_delay)
                resource_version = ""


def _newer(a: Obj, b: Obj) -> bool:
    """Whether ``a`` is a later version than ``b`` (resourceVersions compared as numbers, as the
    embedded API server and etcd issue them; versions that are not numbers are never newer)."""
    try:
        return int(a["metadata"]["resourceVersion"]) > int(b["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return False
