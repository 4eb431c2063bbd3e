"""Watches: a stream of ADDED/MODIFIED/DELETED events from the store's history."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from apiserver import errors as err
from apiserver.objects import ListOptions, ObjectService
from apiserver.resources import ResourceType
from apiserver.selectors import SelectorError
from apiserver.store import Event, StoreClosed

log = logging.getLogger(__name__)

# How often a watch with nothing to send checks for a gone client or a stopping server.
POLL_SECONDS = 1.0
# How often a watch that allows bookmarks sends one when idle.
BOOKMARK_SECONDS = 60.0
# Without `timeoutSeconds`, the real server ends a watch after a random 30 to 60 minutes.
DEFAULT_TIMEOUT_RANGE = (1800.0, 3600.0)
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


@dataclass(frozen=True)
class WatchRequest:
    """What a client asked to watch."""

    rt: ResourceType
    version: str
    namespace: str | None
    options: ListOptions
    resource_version: str | None = None
    timeout_seconds: float | None = None
    bookmarks: bool = False
    send_initial_events: bool | None = None


def expired_event(requested: int, compacted: int) -> dict[str, Any]:
    """The `ERROR` event for a resourceVersion older than the kept history."""
    status = err.expired(f"too old resource version: {requested} ({compacted})").status()
    return {"type": "ERROR", "object": status.to_dict()}


class Watch:
    """One watch; iterate `events()` to get `{"type", "object"}` dicts until it ends."""

    def __init__(
        self,
        service: ObjectService,
        request: WatchRequest,
        stopping: threading.Event,
        client_gone: Callable[[], bool] = lambda: False,
    ) -> None:
        try:
            request.options.field_selector.check_supported(request.rt.supports_field)
        except SelectorError as exc:
            raise err.bad_request(str(exc)) from exc
        self._service = service
        self._request = request
        self._stopping = stopping
        self._client_gone = client_gone
        self._start = self._parse_rv(request.resource_version)

    @staticmethod
    def _parse_rv(text: str | None) -> int | None:
        if text in (None, "", "0"):
            return None
        assert text is not None
        if not text.isdigit():
            raise err.bad_request(f'resourceVersion: Invalid value: "{text}": must be a number')
        return int(text)

    def _filtered(self, event: Event) -> dict[str, Any] | None:
        """Apply the selectors: an object moving out of them is DELETED for this watcher."""
        rt, opts = self._request.rt, self._request.options
        now_matches = ObjectService.matches(rt, event.object, opts)
        kind = event.type
        if kind == "MODIFIED" and event.prev is not None:
            before = ObjectService.matches(rt, event.prev, opts)
            if now_matches and not before:
                kind = "ADDED"
            elif before and not now_matches:
                kind = "DELETED"
            elif not now_matches:
                return None
        elif not now_matches:
            return None
        return {
            "type": kind,
            "object": ObjectService.serve(rt, self._request.version, event.object),
        }

    def _bookmark(self, rv: int, annotations: dict[str, str] | None = None) -> dict[str, Any]:
        rt = self._request.rt
        metadata: dict[str, Any] = {"resourceVersion": str(rv)}
        if annotations:
            metadata["annotations"] = annotations
        obj = {
            "kind": rt.kind,
            "apiVersion": rt.api_version(self._request.version),
            "metadata": metadata,
        }
        return {"type": "BOOKMARK", "object": obj}

    def events(self) -> Iterator[dict[str, Any]]:
        """The events, starting with the initial state or after the given resourceVersion."""
        request, store = self._request, self._service.store
        rt = request.rt
        namespace = request.namespace if rt.namespaced else None
        timeout = request.timeout_seconds
        if timeout is None:
            timeout = random.uniform(*DEFAULT_TIMEOUT_RANGE)
        deadline = time.monotonic() + timeout
        try:
            if self._start is None:
                objects, last = store.snapshot(rt.group, rt.plural, namespace)
                for obj in objects:
                    if ObjectService.matches(rt, obj, request.options):
                        yield {
                            "type": "ADDED",
                            "object": ObjectService.serve(rt, request.version, obj),
                        }
                if request.send_initial_events and request.bookmarks:
                    yield self._bookmark(last, {INITIAL_EVENTS_END: "true"})
            else:
                last = self._start
            last_sent = time.monotonic()
            while True:
                if last < store.compacted:
                    yield expired_event(last, store.compacted)
                    return
                events, latest = store.events_after(last, rt.group, rt.plural, namespace)
                for event in events:
                    translated = self._filtered(event)
                    if translated is not None:
                        yield translated
                        last_sent = time.monotonic()
                last = max(last, latest)
                if events:
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stopping.is_set() or self._client_gone():
                    return
                if request.bookmarks and time.monotonic() - last_sent >= BOOKMARK_SECONDS:
                    yield self._bookmark(last)
                    last_sent = time.monotonic()
                store.wait_for_change(last, min(POLL_SECONDS, remaining))
        except StoreClosed:
            log.debug("watch ended: store closed")
