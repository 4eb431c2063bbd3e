"""The wire format between the edge and the cloud worker (Sedna's ``/predict`` shape).

``POST /predict`` with ``{"data": <sample>}`` answers ``{"result": <prediction>}``; with
``{"data": [<sample>, ...], "batch": true}`` it answers ``{"result": [<prediction>, ...]}``
(one estimator call for the whole batch). Errors answer ``{"error": "..."}`` with a 4xx/5xx
status. ``GET /healthz`` answers ``{"status": "ok"}``.

Numpy arrays travel as nested JSON lists; the cloud turns a regular numeric list back into a
numpy array before calling the estimator, so both sides' estimators see the same kind of input.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

PREDICT_PATHS = ("/predict", "/sedna/predict")
HEALTH_PATH = "/healthz"


class PredictRequest(BaseModel):
    """Body of ``POST /predict``; ``callback`` names a post-processing step (upstream's
    field); other fields upstream clients send (e.g. ``post_process``) are ignored."""

    model_config = ConfigDict(extra="ignore")

    data: Any
    batch: bool = False
    callback: str | None = None


class PredictResponse(BaseModel):
    """Successful answer of ``POST /predict``."""

    result: Any


class ErrorResponse(BaseModel):
    """Failed answer of any endpoint."""

    error: str


def _numpy_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(document: dict[str, Any]) -> bytes:
    """JSON-encode ``document``; numpy arrays and scalars become lists and numbers."""
    return json.dumps(document, default=_numpy_default, separators=(",", ":")).encode()


def decode_data(value: Any) -> Any:
    """A regular numeric nested list as a numpy array; anything else unchanged."""
    if not isinstance(value, list):
        return value
    try:
        array = np.asarray(value)
    except ValueError:  # ragged nesting
        return value
    return array if array.dtype.kind in "biuf" else value
