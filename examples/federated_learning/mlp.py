"""A small numpy MLP for the digits example: the estimator both training workers and the
benchmark use. Weights are numpy arrays, so the federated exchange moves them directly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

NUM_FEATURES = 64
NUM_CLASSES = 10


def _one_hot(labels: np.ndarray) -> np.ndarray:
    encoded = np.zeros((labels.size, NUM_CLASSES), dtype=np.float32)
    encoded[np.arange(labels.size), labels] = 1.0
    return encoded


def _features(data: Any) -> np.ndarray:
    x = data.x if hasattr(data, "x") else data
    # Digits pixels are 0..16; scale to 0..1.
    return np.asarray(x, dtype=np.float32) / 16.0


def _labels(data: Any) -> np.ndarray:
    return np.asarray(data.y).astype(np.int64)


class DigitsMLP:
    """64-``hidden``-10 ReLU network trained by minibatch SGD on softmax cross-entropy.

    Implements the Estimator protocol (train/evaluate/predict/save/load/get_weights/
    set_weights). ``train`` accepts ``proximal`` (FedProx) and adds its gradient.
    """

    def __init__(
        self,
        hidden: int = 32,
        learning_rate: float = 0.1,
        batch_size: int = 32,
        epochs: int = 1,
        seed: int = 0,
    ) -> None:
        self.learning_rate = float(learning_rate)
        self.batch_size = int(batch_size)
        self.epochs = int(epochs)
        init = np.random.default_rng(seed)
        self.weights: list[np.ndarray] = [
            (init.standard_normal((NUM_FEATURES, hidden)) * np.sqrt(2 / NUM_FEATURES)).astype(
                np.float32
            ),
            np.zeros(hidden, np.float32),
            (init.standard_normal((hidden, NUM_CLASSES)) * np.sqrt(2 / hidden)).astype(np.float32),
            np.zeros(NUM_CLASSES, np.float32),
        ]
        self._shuffle = np.random.default_rng(seed + 1)

    # -- Estimator protocol -----------------------------------------------------------------

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the four weight tensors."""
        return [w.copy() for w in self.weights]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        """Replace the weights (shapes must match)."""
        if [np.shape(w) for w in weights] != [w.shape for w in self.weights]:
            raise ValueError("weights do not fit this network's shapes")
        self.weights = [np.array(w, dtype=np.float32) for w in weights]

    def train(
        self,
        train_data: Any,
        valid_data: Any = None,
        epochs: int | None = None,
        proximal: Any = None,
        **kwargs: Any,
    ) -> dict[str, float]:
        """``epochs`` passes of minibatch SGD; returns the last epoch's mean loss (and the
        validation accuracy when ``valid_data`` is given)."""
        x, y = _features(train_data), _one_hot(_labels(train_data))
        loss = 0.0
        for _ in range(self.epochs if epochs is None else int(epochs)):
            order = self._shuffle.permutation(len(x))
            losses = []
            for start in range(0, len(x), self.batch_size):
                batch = order[start : start + self.batch_size]
                losses.append(self._step(x[batch], y[batch], proximal))
            loss = float(np.mean(losses))
        metrics = {"loss": loss}
        if valid_data is not None:
            metrics["accuracy"] = self.evaluate(valid_data)["accuracy"]
        return metrics

    def evaluate(self, data: Any, **kwargs: Any) -> dict[str, float]:
        """Accuracy on ``data``."""
        predicted = self.predict(data)
        return {"accuracy": float(np.mean(predicted == _labels(data)))}

    def predict(self, data: Any, **kwargs: Any) -> np.ndarray:
        """Predicted class of each sample."""
        _, logits = self._forward(_features(data))
        return np.argmax(logits, axis=1)

    def save(self, model_path: str, **kwargs: Any) -> str:
        """Write the weights to ``model_path`` (npz); returns the path."""
        path = Path(model_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, *self.weights)
        return str(path)

    def load(self, model_url: str, **kwargs: Any) -> None:
        """Read weights from an npz written by :meth:`save` or by the aggregator."""
        with np.load(model_url) as archive:
            self.set_weights([archive[name] for name in archive.files])

    # -- numerics ---------------------------------------------------------------------------

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w1, b1, w2, b2 = self.weights
        hidden = np.maximum(x @ w1 + b1, 0.0)
        return hidden, hidden @ w2 + b2

    def _step(self, x: np.ndarray, y: np.ndarray, proximal: Any) -> float:
        w2 = self.weights[2]
        hidden, logits = self._forward(x)
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        loss = -float(np.mean(np.sum(y * np.log(probabilities + 1e-12), axis=1)))
        d_logits = (probabilities - y) / len(x)
        d_hidden = (d_logits @ w2.T) * (hidden > 0)
        gradients = [x.T @ d_hidden, d_hidden.sum(0), hidden.T @ d_logits, d_logits.sum(0)]
        if proximal is not None:
            gradients = [
                g + p for g, p in zip(gradients, proximal.gradient(self.weights), strict=True)
            ]
        self.weights = [
            (w - self.learning_rate * g).astype(np.float32)
            for w, g in zip(self.weights, gradients, strict=True)
        ]
        return loss
