"""The hard example mining algorithms, registered by name in the class factory."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import Field

from sedna.algorithms.hard_example_mining.base import BaseFilter, FilterParams, box_scores
from sedna.common.class_factory import ClassFactory, ClassType
from sedna.common.errors import InvalidInputError

# Probability vectors from float32 softmax sum to 1 within ~1e-6; allow for rounding in transit.
_PROBABILITY_SUM_TOLERANCE = 1e-3
# Tolerance when comparing a share of boxes with 1 - threshold_img (e.g. 1 - 0.9).
_SHARE_TOLERANCE = 1e-9


class IBTParams(FilterParams):
    """Image-box thresholds of :class:`IBTFilter`."""

    threshold_img: float = Field(default=0.5, ge=0, le=1)
    threshold_box: float = Field(default=0.5, ge=0, le=1)


@ClassFactory.register(ClassType.HEM, alias="IBT")
class IBTFilter(BaseFilter):
    """Hard when the share of boxes scoring ``<= threshold_box`` is ``>= 1 - threshold_img``.

    Input: the box scores of one image. An image without boxes is not hard: there is no
    uncertain detection to send to the cloud.
    """

    name = "IBT"
    Params = IBTParams

    def is_hard(self, result: Any) -> bool:
        """See the class docstring."""
        params: IBTParams = self.params  # type: ignore[assignment]
        scores = box_scores(self.name, result)
        if scores.size == 0:
            return False
        low = int(np.count_nonzero(scores <= params.threshold_box))
        return low / scores.size >= (1 - params.threshold_img) - _SHARE_TOLERANCE


class CrossEntropyParams(FilterParams):
    """Threshold of :class:`CrossEntropyFilter`."""

    threshold_cross_entropy: float = Field(default=0.5, ge=0, le=1)


@ClassFactory.register(ClassType.HEM, alias="CrossEntropy")
class CrossEntropyFilter(BaseFilter):
    """Hard when the confidence ``1 + sum(p * ln p) / ln K`` is below the threshold.

    Input: one class probability vector of ``K >= 2`` classes (non-negative, summing to 1).
    The confidence is 1 for a one-hot vector and 0 for the uniform one; ``p = 0`` terms add 0.
    """

    name = "CrossEntropy"
    Params = CrossEntropyParams

    def is_hard(self, result: Any) -> bool:
        """See the class docstring."""
        probabilities = self._probabilities(result, batch=False)
        return bool(self._hard(probabilities[None, :])[0])

    def is_hard_batch(self, results: Sequence[Any] | np.ndarray) -> list[bool]:
        """Vectorised over a batch of probability vectors (a 2-D array ``(n, K)``)."""
        if len(results) == 0:
            return []
        return [bool(hard) for hard in self._hard(self._probabilities(results, batch=True))]

    def confidence(self, probabilities: np.ndarray) -> np.ndarray:
        """``1 + sum(p ln p) / ln K`` per row, clipped to ``[0, 1]``."""
        classes = probabilities.shape[-1]
        safe = np.where(probabilities > 0, probabilities, 1.0)
        plogp = np.where(probabilities > 0, probabilities * np.log(safe), 0.0)
        return np.clip(1 + plogp.sum(axis=-1) / np.log(classes), 0.0, 1.0)

    def _hard(self, probabilities: np.ndarray) -> np.ndarray:
        params: CrossEntropyParams = self.params  # type: ignore[assignment]
        return self.confidence(probabilities) < params.threshold_cross_entropy

    def _probabilities(self, result: Any, *, batch: bool) -> np.ndarray:
        expected = "a batch of probability vectors" if batch else "a class probability vector"
        try:
            values = np.asarray(result, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidInputError(f"{self.name} expects {expected}, got {result!r}") from None
        if values.ndim != (2 if batch else 1):
            raise InvalidInputError(
                f"{self.name} expects {expected}, got an array of shape {values.shape}"
            )
        if values.shape[-1] < 2:
            raise InvalidInputError(
                f"{self.name} needs at least 2 class probabilities, got {values.shape[-1]}"
            )
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise InvalidInputError(f"{self.name}: probabilities must be finite and >= 0")
        sums = values.sum(axis=-1)
        if np.any(np.abs(sums - 1) > _PROBABILITY_SUM_TOLERANCE):
            raise InvalidInputError(
                f"{self.name}: probabilities must sum to 1, got sums {np.round(sums, 4)}"
            )
        return values


class ThresholdParams(FilterParams):
    """Threshold of :class:`ThresholdFilter`."""

    threshold: float = Field(default=0.5, ge=0, le=1)


@ClassFactory.register(ClassType.HEM, alias="ThresholdFilter")
@ClassFactory.register(ClassType.HEM, alias="Threshold")
class ThresholdFilter(BaseFilter):
    """Hard when the mean box score is below ``threshold``; an image without boxes is not."""

    name = "Threshold"
    Params = ThresholdParams

    def is_hard(self, result: Any) -> bool:
        """See the class docstring."""
        params: ThresholdParams = self.params  # type: ignore[assignment]
        scores = box_scores(self.name, result)
        return bool(scores.size) and float(scores.mean()) < params.threshold


class RandomParams(FilterParams):
    """Ratio and seed of :class:`RandomFilter`."""

    random_ratio: float = Field(default=0.3, ge=0, le=1)
    seed: int | None = None


@ClassFactory.register(ClassType.HEM, alias="Random")
class RandomFilter(BaseFilter):
    """Hard with probability ``random_ratio`` whatever the result (a baseline); seedable."""

    name = "Random"
    Params = RandomParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._random = random.Random(self.params.seed)  # type: ignore[attr-defined]

    def is_hard(self, result: Any) -> bool:
        """See the class docstring."""
        return self._random.random() < self.params.random_ratio  # type: ignore[attr-defined]


@ClassFactory.register(ClassType.HEM, alias="EdgeOnly")
class EdgeOnlyFilter(BaseFilter):
    """Never hard: every sample is answered on the edge."""

    name = "EdgeOnly"

    def is_hard(self, result: Any) -> bool:
        """Always ``False``."""
        return False


@ClassFactory.register(ClassType.HEM, alias="CloudOnly")
class CloudOnlyFilter(BaseFilter):
    """Always hard: every sample is sent to the cloud."""

    name = "CloudOnly"

    def is_hard(self, result: Any) -> bool:
        """Always ``True``."""
        return True
