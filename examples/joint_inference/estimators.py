"""The two digit classifiers of the joint inference example, as Sedna estimators.

Both ``predict`` a class probability vector per sample (a 2-D array for a batch, a 1-D one for
a single sample), so the edge's results feed ``CrossEntropy`` hard example mining and the final
label is always ``argmax``. Models are stored as pickles of the scikit-learn objects.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

CLASSES = 10


class _SklearnEstimator:
    """Shared train/evaluate/predict/load/save of a scikit-learn classifier."""

    def __init__(self, **kwargs: Any) -> None:
        self.model: Any = None

    def build(self) -> ClassifierMixin:
        """A fresh, untrained classifier."""
        raise NotImplementedError

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities of a 2-D batch."""
        raise NotImplementedError

    def train(self, train_data: Any, valid_data: Any = None, **kwargs: Any) -> dict[str, float]:
        """Fit on ``train_data.x``/``train_data.y``; returns the validation metrics if given."""
        self.model = self.build().fit(np.asarray(train_data.x), np.asarray(train_data.y))
        return self.evaluate(valid_data) if valid_data is not None else {}

    def evaluate(self, data: Any, **kwargs: Any) -> dict[str, float]:
        """Accuracy on ``data.x``/``data.y``."""
        predicted = np.argmax(self.predict(np.asarray(data.x)), axis=1)
        return {"accuracy": float(np.mean(predicted == np.asarray(data.y)))}

    def predict(self, data: Any, **kwargs: Any) -> np.ndarray:
        """Probability vectors: ``(n, 10)`` for a batch, ``(10,)`` for one sample."""
        if self.model is None:
            raise RuntimeError(f"{type(self).__name__} has no model: call load() or train()")
        x = np.asarray(data, dtype=np.float64)
        if x.ndim == 1:
            return self.probabilities(x[None, :])[0]
        return self.probabilities(x)

    def load(self, model_url: str, **kwargs: Any) -> None:
        """Read the pickled classifier at ``model_url``."""
        with Path(model_url).open("rb") as handle:
            self.model = pickle.load(handle)

    def save(self, model_path: str, **kwargs: Any) -> str:
        """Pickle the classifier to ``model_path``; returns the path."""
        path = Path(model_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            pickle.dump(self.model, handle)
        return str(path)

    def get_weights(self) -> list[np.ndarray]:
        """Not used by joint inference."""
        raise NotImplementedError(f"{type(self).__name__} does not expose weights")

    def set_weights(self, weights: list[np.ndarray]) -> None:
        """Not used by joint inference."""
        raise NotImplementedError(f"{type(self).__name__} does not accept weights")


class EdgeEstimator(_SklearnEstimator):
    """Small and fast: logistic regression on standardised pixels (640 weights).

    Its probabilities are well calibrated, so low-confidence outputs flag likely mistakes.
    """

    def build(self) -> ClassifierMixin:
        return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(x)


class CloudEstimator(_SklearnEstimator):
    """Bigger and more accurate: an RBF support vector machine (hundreds of support vectors).

    It answers with a one-hot vector of its predicted class (it is the final word).
    """

    def build(self) -> ClassifierMixin:
        return SVC(kernel="rbf", gamma=0.001, C=10.0)

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        labels = self.model.predict(x).astype(int)
        return np.eye(CLASSES)[labels]
