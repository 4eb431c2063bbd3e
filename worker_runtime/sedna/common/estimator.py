"""The Estimator protocol: what a user's model class provides to the library's features."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Estimator(Protocol):
    """A model wrapper. Features call only the methods they need (inference: ``predict``,
    ``load``; training: ``train``, ``evaluate``, ``save``, ``get_weights``, ``set_weights``)."""

    def train(self, train_data: Any, valid_data: Any = None, **kwargs: Any) -> Any:
        """Fit the model on ``train_data`` (a :class:`~sedna.datasources.BaseDataSource`)."""
        ...

    def evaluate(self, data: Any, **kwargs: Any) -> Any:
        """Score the model on ``data``; returns metrics."""
        ...

    def predict(self, data: Any, **kwargs: Any) -> Any:
        """Predict for one sample or a batch of samples."""
        ...

    def load(self, model_url: str, **kwargs: Any) -> Any:
        """Load model weights from ``model_url`` (a path)."""
        ...

    def save(self, model_path: str, **kwargs: Any) -> Any:
        """Write the model to ``model_path``."""
        ...

    def get_weights(self) -> Any:
        """The model's weights (e.g. a list of arrays)."""
        ...

    def set_weights(self, weights: Any) -> None:
        """Replace the model's weights."""
        ...


def resolve_estimator(estimator: Any, required: tuple[str, ...] = ("predict",)) -> Any:
    """An estimator instance: Sedna scripts pass either the class or an instance.

    A class is instantiated without arguments. Raises :class:`TypeError` naming the missing
    methods when the object lacks what the feature ``required``.
    """
    instance = estimator() if isinstance(estimator, type) else estimator
    missing = [name for name in required if not callable(getattr(instance, name, None))]
    if missing:
        raise TypeError(
            f"estimator {type(instance).__name__} lacks required method(s): {', '.join(missing)}"
        )
    return instance
