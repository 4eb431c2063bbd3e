"""Unseen sample recognition algorithms (``ClassType.UTD``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from sedna.common.class_factory import ClassFactory, ClassType
from sedna.common.errors import ConfigError

DEFAULT_K = 5
DEFAULT_QUANTILE = 0.95


def knn_distance(x: np.ndarray, references: Mapping[str, np.ndarray], k: int) -> np.ndarray:
    """Per row of ``x``: the distance to the ``k``-th nearest reference sample of the closest
    task (``inf`` when there are no references)."""
    best = np.full(len(x), np.inf)
    for reference in references.values():
        if len(reference) == 0:
            continue
        kk = min(k, len(reference))
        squared = (
            (x**2).sum(axis=1)[:, None] - 2 * x @ reference.T + (reference**2).sum(axis=1)[None, :]
        )
        kth = np.partition(np.maximum(squared, 0), kk - 1, axis=1)[:, kk - 1]
        best = np.minimum(best, np.sqrt(kth))
    return best


def calibrate_threshold(
    x_seen: np.ndarray,
    references: Mapping[str, np.ndarray],
    k: int = DEFAULT_K,
    quantile: float = DEFAULT_QUANTILE,
) -> float:
    """The ``quantile`` of :func:`knn_distance` over samples of seen tasks (evaluation data)."""
    if len(x_seen) == 0:
        raise ConfigError("calibrating the unseen-sample threshold needs seen evaluation samples")
    return float(np.quantile(knn_distance(x_seen, references, k), quantile))


class _Recognition:
    """Base: ``__call__(x, entries, deployed, references, detector) -> unseen mask``."""

    def __init__(self, **params: Any) -> None:
        self.params = params

    def __call__(
        self,
        x: np.ndarray,
        entries: list[str | None] | None,
        deployed: set[str],
        references: Mapping[str, np.ndarray],
        detector: Mapping[str, Any],
    ) -> np.ndarray:
        raise NotImplementedError


@ClassFactory.register(ClassType.UTD, alias="TaskAttrFilter")
@ClassFactory.register(ClassType.UTD, alias="SampleRecognitionByAttribute")
class SampleRecognitionByAttribute(_Recognition):
    """Unseen iff the sample's task (found by attribute) is unknown or not deployed."""

    def __call__(self, x, entries, deployed, references, detector):
        if entries is None:
            raise ConfigError("recognition by attribute: the samples lack the task attribute")
        return np.array([entry is None or entry not in deployed for entry in entries], dtype=bool)


@ClassFactory.register(ClassType.UTD, alias="SampleRecognitionByDistance")
class SampleRecognitionByDistance(_Recognition):
    """Unseen iff far from every deployed task's training samples (threshold calibrated)."""

    def __call__(self, x, entries, deployed, references, detector):
        threshold = self.params.get("threshold", detector.get("threshold"))
        if threshold is None:
            raise ConfigError(
                "recognition by distance needs a threshold: run evaluate() on seen data first "
                "(it calibrates one) or pass param threshold"
            )
        if x.dtype == object:
            raise ConfigError("recognition by distance needs numeric samples")
        k = int(self.params.get("k", detector.get("k", DEFAULT_K)))
        usable = {e: r for e, r in references.items() if e in deployed}
        return knn_distance(x, usable, k) > float(threshold)


@ClassFactory.register(ClassType.UTD, alias="SampleRegonitionDefault")
class SampleRegonitionDefault(_Recognition):
    """By attribute when the samples carry it, else by distance."""

    def __call__(self, x, entries, deployed, references, detector):
        if entries is not None:
            return SampleRecognitionByAttribute(**self.params)(
                x, entries, deployed, references, detector
            )
        return SampleRecognitionByDistance(**self.params)(
            x, entries, deployed, references, detector
        )


@ClassFactory.register(ClassType.UTD, alias="SampleReRegonitionDefault")
class SampleReRegonitionDefault(SampleRegonitionDefault):
    """In ``update``: new training samples of unknown tasks are unseen (they become tasks)."""
