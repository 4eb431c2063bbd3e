"""Framework backends: the wrapper upstream Sedna's features put around a user's estimator.

``set_backend(estimator, config)`` picks the backend by ``BACKEND_TYPE``. Every type wraps the
estimator the same way (:class:`~sedna.backend.base.BackendBase`: keyword filtering, lazy
construction of an estimator class, ``save``/``load`` paths from ``MODEL_URL``/``MODEL_NAME``);
the type only decides the default model file name (``.pb`` for TENSORFLOW/KERAS, ``.pth`` for
TORCH, ``.ckpt`` for MINDSPORE, ``.pkl`` otherwise). No framework is imported: device and
session set-up (upstream's TF/Torch/MindSpore backends) is left to the estimator.
"""

from __future__ import annotations

import os
from typing import Any

from sedna.backend.base import FRAMEWORKS, BackendBase
from sedna.common.config import BaseConfig
from sedna.common.log import get_logger

LOG = get_logger("backend")

__all__ = ["FRAMEWORKS", "BackendBase", "set_backend"]


def set_backend(estimator: Any = None, config: Any = None) -> BackendBase | None:
    """``estimator`` wrapped for the ``BACKEND_TYPE`` backend; ``None`` without an estimator."""
    if estimator is None:
        return None
    if config is None:
        config = BaseConfig()
    backend_type = str(os.environ.get("BACKEND_TYPE") or config.get("backend_type") or "SKLEARN")
    backend_type = backend_type.upper()
    if backend_type not in FRAMEWORKS:
        LOG.warning(
            "unknown BACKEND_TYPE; the estimator is used as it is",
            extra={"backend_type": backend_type, "known": ", ".join(FRAMEWORKS)},
        )
    use_cuda = "CUDA_VISIBLE_DEVICES" in os.environ
    os.environ["DEVICE_CATEGORY"] = (
        "GPU" if use_cuda else (os.environ.get("DEVICE_CATEGORY") or "CPU")
    )
    model_url = config.get("model_url") or None
    return BackendBase(
        estimator=estimator,
        framework=FRAMEWORKS.get(backend_type, ""),
        use_cuda=use_cuda,
        model_save_path=config.get("base_model_url") or model_url,
        model_name=config.get("model_name") or None,
        model_save_url=model_url,
    )
