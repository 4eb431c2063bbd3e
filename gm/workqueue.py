"""One rate-limited work queue for every reconciler of the GM.

Keys (``kind/namespace/name``) are de-duplicated while waiting; a key being processed is never
handed to a second worker, and a key added during processing runs again once it is done. Failed
keys come back after an exponential backoff; ``forget`` resets it after a success. ``add_spaced``
runs a key at most once per interval: the adds that arrive meanwhile become one later run.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable


class WorkQueue:
    """A thread-safe queue of keys with de-duplication, delays and per-key backoff."""

    def __init__(
        self,
        base_delay: float = 0.05,
        max_delay: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._clock = clock
        self._cond = threading.Condition()
        self._ready: list[str] = []
        self._queued: set[str] = set()
        self._processing: set[str] = set()
        self._dirty: set[str] = set()
        self._delayed: list[tuple[float, str]] = []
        self._failures: dict[str, int] = {}
        self._started: dict[str, float] = {}  # key -> when it was last handed out (add_spaced)
        self._spaced: dict[str, float] = {}  # key -> when its pending spaced run is due
        self._prune_at = 1024
        self._shutdown = False

    def add(self, key: str) -> None:
        """Queue ``key`` unless it is already waiting; re-run it later if it is in progress."""
        with self._cond:
            if self._shutdown or key in self._queued:
                return
            if key in self._processing:
                self._dirty.add(key)
                return
            self._queued.add(key)
            self._ready.append(key)
            self._cond.notify()

    def add_after(self, key: str, delay: float) -> None:
        """Queue ``key`` once ``delay`` seconds have passed."""
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            heapq.heappush(self._delayed, (self._clock() + delay, key))
            self._cond.notify()

    def add_spaced(self, key: str, interval: float) -> None:
        """Queue ``key`` now if it last started ``interval`` seconds ago or more, else when that
        interval is over (once, however many adds arrive meanwhile)."""
        with self._cond:
            if self._shutdown or key in self._queued:
                return
            now = self._clock()
            due = self._started.get(key, now - interval) + interval
            if due <= now:
                self._started.pop(key, None)
                self._prune_started(now, interval)
            elif key in self._spaced:
                return  # already due at the end of the interval
            else:
                self._spaced[key] = due
                heapq.heappush(self._delayed, (due, key))
                self._cond.notify()
                return
        self.add(key)

    def add_rate_limited(self, key: str) -> float:
        """Queue ``key`` after its backoff (doubling on each failure); returns the delay."""
        with self._cond:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        delay = min(self._base_delay * (2**failures), self._max_delay)
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        """Reset ``key``'s backoff after it was processed successfully."""
        with self._cond:
            self._failures.pop(key, None)

    def failures(self, key: str) -> int:
        """How many times in a row ``key`` failed."""
        with self._cond:
            return self._failures.get(key, 0)

    def get(self, timeout: float | None = None) -> str | None:
        """The next key to process, or ``None`` on shutdown or timeout. Call ``done`` after."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                self._promote_due()
                if self._ready:
                    key = self._ready.pop(0)
                    self._queued.discard(key)
                    self._processing.add(key)
                    self._started[key] = self._clock()
                    return key
                if self._shutdown:
                    return None
                if deadline is not None and self._clock() >= deadline:
                    return None
                self._cond.wait(self._next_wait(deadline))

    def done(self, key: str) -> None:
        """Mark ``key`` processed; it runs again if it was added meanwhile."""
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._dirty.discard(key)
                if key not in self._queued:
                    self._queued.add(key)
                    self._ready.append(key)
                    self._cond.notify()

    def shutdown(self) -> None:
        """Wake every waiting ``get`` with ``None``; later adds are ignored."""
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._ready) + len(self._delayed)

    def _promote_due(self) -> None:
        now = self._clock()
        while self._delayed and self._delayed[0][0] <= now:
            due, key = heapq.heappop(self._delayed)
            if self._spaced.get(key) == due:
                del self._spaced[key]
            if key in self._queued:
                continue
            if key in self._processing:
                self._dirty.add(key)
                continue
            self._queued.add(key)
            self._ready.append(key)

    def _prune_started(self, now: float, interval: float) -> None:
        """Forget start times older than ``interval`` once they pile up (deleted objects')."""
        if len(self._started) > self._prune_at:
            self._started = {k: t for k, t in self._started.items() if t + interval > now}
            self._prune_at = max(1024, 2 * len(self._started))

    def _next_wait(self, deadline: float | None) -> float | None:
        now = self._clock()
        candidates = []
        if self._delayed:
            candidates.append(self._delayed[0][0] - now)
        if deadline is not None:
            candidates.append(deadline - now)
        return max(min(candidates), 0.001) if candidates else None
