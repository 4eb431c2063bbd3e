"""``InferenceServer``: upstream Sedna's REST server around a model's ``inference``."""

from __future__ import annotations

from typing import Any

from sedna.core.joint_inference.protocol import PredictRequest
from sedna.core.joint_inference.service import BigModelService


class _Inference:
    """Adapts an object with ``inference(data, post_process)`` to the estimator interface."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, data: Any, **kwargs: Any) -> Any:
        return self.model.inference(data, **kwargs)


class InferenceServer(BigModelService):
    """Serves ``model.inference`` on ``POST /<servername>/predict`` (``{"data", "callback"}``
    answers ``{"result"}``) and lists its routes on ``GET /<servername>``.

    ``max_buffer_size`` is accepted for compatibility (request bodies are capped at 64 MiB);
    ``workers`` > 1 lets requests run concurrently.
    """

    def __init__(
        self,
        model: Any,
        servername: str,
        host: str = "127.0.0.1",
        http_port: int = 8080,
        max_buffer_size: int = 104857600,
        workers: int = 1,
    ) -> None:
        super().__init__(
            _Inference(model), host=host, port=http_port, model_url="", concurrent=workers > 1
        )
        self.model = model
        self.max_buffer_size = max_buffer_size
        self.info_paths = (f"/{servername}",)
        self.predict_paths = (f"/{servername}/predict",)

    def _predict(self, data: Any, request: PredictRequest) -> Any:
        return self.model.inference(data, post_process=request.callback)
