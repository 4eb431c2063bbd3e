"""The numbers of the page: each component's ``/metrics``, scraped and kept in memory.

Every ``interval`` seconds the sampler reads each target's ``/metrics`` (the endpoints
Prometheus scrapes), parses it with ``prometheus_client.parser``, keeps the latest samples,
and appends the samples of the series named in ``history`` to a bounded ring per series. That
ring is all the history the page has: nothing is written anywhere.
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import NamedTuple

from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)

Labels = tuple[tuple[str, str], ...]
#: Reads one target: URL -> the exposition text (raises on failure).
Fetch = Callable[[str], str]


class Point(NamedTuple):
    """One sampled value of a series."""

    time: float
    value: float


class TargetState(NamedTuple):
    """The last scrape of one target."""

    url: str
    ok: bool
    error: str
    time: float
    samples: int


def fetch_url(url: str, timeout: float = 5.0) -> str:
    """The text of ``url`` (a ``/metrics`` endpoint)."""
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        return reply.read().decode("utf-8", "replace")


def parse(text: str) -> Iterable[tuple[str, Labels, float]]:
    """Samples of an exposition text: (sample name, sorted labels, value)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            yield sample.name, tuple(sorted(sample.labels.items())), float(sample.value)


class Sampler:
    """Scrapes the targets on a timer; answers the latest values and the kept history."""

    def __init__(
        self,
        targets: Mapping[str, str],
        history: Collection[str],
        *,
        interval: float = 5.0,
        points: int = 720,
        fetch: Fetch = fetch_url,
    ) -> None:
        self.targets = dict(targets)
        self.history_names = frozenset(history)
        self.interval = interval
        self.points = points
        self._fetch = fetch
        self._lock = threading.Lock()
        self._latest: dict[str, dict[tuple[str, Labels], float]] = {}
        self._history: dict[tuple[str, Labels], deque[Point]] = {}
        self._scrapes: dict[str, deque[float]] = {}
        self._states: dict[str, TargetState] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        """Scrape every target once."""
        for target, url in self.targets.items():
            now = time.time()
            try:
                samples = {(n, labels): v for n, labels, v in parse(self._fetch(url))}
            except Exception as exc:  # a component down or mid-restart: keep the last values
                log.debug("scrape failed", extra={"target": target, "error": str(exc)})
                with self._lock:
                    self._states[target] = TargetState(url, False, str(exc), now, 0)
                continue
            with self._lock:
                self._latest[target] = samples
                self._states[target] = TargetState(url, True, "", now, len(samples))
                self._scrapes.setdefault(target, deque(maxlen=self.points)).append(now)
                for (name, labels), value in samples.items():
                    if name in self.history_names:
                        ring = self._history.setdefault((name, labels), deque(maxlen=self.points))
                        ring.append(Point(now, value))

    def value(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """The latest value of the first sample ``name`` with ``labels`` (any target)."""
        found = self.values(name, labels)
        return next(iter(found.values()), None)

    def values(self, name: str, labels: Mapping[str, str] | None = None) -> dict[Labels, float]:
        """The latest samples ``name`` whose labels include ``labels``, by their labels."""
        wanted = set((labels or {}).items())
        with self._lock:
            return {
                key_labels: value
                for samples in self._latest.values()
                for (key_name, key_labels), value in samples.items()
                if key_name == name and wanted <= set(key_labels)
            }

    def history(
        self, name: str, labels: Mapping[str, str] | None = None
    ) -> dict[Labels, list[Point]]:
        """The kept points of the series ``name`` whose labels include ``labels``."""
        wanted = set((labels or {}).items())
        with self._lock:
            return {
                key_labels: list(ring)
                for (key_name, key_labels), ring in self._history.items()
                if key_name == name and wanted <= set(key_labels)
            }

    def states(self) -> dict[str, TargetState]:
        """How the last scrape of each target went."""
        with self._lock:
            return dict(self._states)

    def scrape_times(self, exposing: str) -> list[float]:
        """When the targets that expose samples named ``exposing`` were scraped (kept ones)."""
        with self._lock:
            return sorted(
                t
                for target, samples in self._latest.items()
                if any(name == exposing for name, _ in samples)
                for t in self._scrapes.get(target, ())
            )

    def start(self) -> None:
        """Sample now and then every ``interval`` seconds, in a background thread (a slow or
        absent target never holds up the start)."""
        self._thread = threading.Thread(target=self._run, name="opsui-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                self.sample()
            except Exception:
                log.exception("sampling failed")
            if self._stop.wait(self.interval):
                return

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
