"""The hard example mining interface: decide from an edge result whether a sample is hard."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from sedna.common.errors import ConfigError, InvalidInputError


class FilterParams(BaseModel):
    """Parameters of a mining algorithm; values may arrive as strings (``"0.9"``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class BaseFilter(ABC):
    """A hard example mining algorithm: ``filter(edge_result) -> is_hard``.

    Subclasses declare their parameters as a :class:`FilterParams` subclass in ``Params``; a
    bad, out-of-range or unknown parameter is a :class:`ConfigError` at construction.
    """

    name: ClassVar[str] = "base"
    Params: ClassVar[type[FilterParams]] = FilterParams

    def __init__(self, **params: Any) -> None:
        self.params = self.parse_params(params)

    @classmethod
    def parse_params(cls, params: Mapping[str, Any]) -> FilterParams:
        """Validate ``params`` into ``cls.Params``; errors name the algorithm and parameter."""
        try:
            return cls.Params.model_validate(dict(params))
        except ValidationError as error:
            raise ConfigError(_describe(cls, error)) from None

    @abstractmethod
    def is_hard(self, result: Any) -> bool:
        """Whether the sample that gave ``result`` on the edge is hard."""

    def is_hard_batch(self, results: Sequence[Any] | np.ndarray) -> list[bool]:
        """:meth:`is_hard` for each result of a batch."""
        return [self.is_hard(result) for result in results]

    def __call__(self, result: Any) -> bool:
        return self.is_hard(result)

    def __repr__(self) -> str:
        values = ", ".join(f"{key}={value!r}" for key, value in self.params.model_dump().items())
        return f"{type(self).__name__}({values})"


def _describe(cls: type[BaseFilter], error: ValidationError) -> str:
    known = ", ".join(cls.Params.model_fields) or "none"
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "parameters"
        if item["type"] == "extra_forbidden":
            problems.append(f"unknown parameter {field!r} (known: {known})")
        else:
            problems.append(f"{field}: {item['msg']} (got {item.get('input')!r})")
    return f"hard example mining {cls.name!r}: " + "; ".join(problems)


def box_scores(name: str, result: Any) -> np.ndarray:
    """The box scores of one image's result as a 1-D float array.

    Accepts a sequence of scores, or Sedna's detection boxes ``[x1, y1, x2, y2, score, ...]``
    (a 2-D array with at least five columns; the score is column 4).
    """
    try:
        values = np.asarray(result, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"{name} expects a list of box scores per image, got {_preview(result)}"
        ) from None
    if values.ndim == 2 and (values.shape[1] >= 5 or values.shape[0] == 0):
        values = values[:, 4] if values.shape[0] else np.empty(0)
    if values.ndim != 1:
        raise InvalidInputError(
            f"{name} expects a list of box scores per image (or boxes with the score in "
            f"column 4), got an array of shape {values.shape}"
        )
    if not np.all(np.isfinite(values)):
        raise InvalidInputError(f"{name}: box scores must be finite numbers, got {values}")
    return values


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."
