"""The example's estimator: one logistic regression per task (max_iter=2000)."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression


class TaskEstimator:
    """A Sedna estimator: ``train``, ``predict``, ``save``, ``load``."""

    def __init__(self) -> None:
        self.model = LogisticRegression(max_iter=2000)

    def train(self, train_data: Any, valid_data: Any = None, **kwargs: Any) -> dict[str, float]:
        """Fit on ``train_data.x`` / ``train_data.y``."""
        self.model.fit(np.asarray(train_data.x, dtype=float), np.asarray(train_data.y))
        return {"train_samples": float(len(train_data.x))}

    def predict(self, data: Any, **kwargs: Any) -> np.ndarray:
        """Class labels of the rows of ``data``."""
        return self.model.predict(np.asarray(data, dtype=float))

    def save(self, model_path: str, **kwargs: Any) -> str:
        """Pickle the model to ``model_path``."""
        with open(model_path, "wb") as handle:
            pickle.dump(self.model, handle)
        return model_path

    def load(self, model_url: str, **kwargs: Any) -> None:
        """Load a model written by :meth:`save` (a file this job wrote itself)."""
        with open(model_url, "rb") as handle:
            self.model = pickle.load(handle)
