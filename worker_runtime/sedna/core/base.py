"""``JobBase``: upstream Sedna's base class of the features (config, estimator, reports).

Features built on it (upstream's incremental and lifelong learning are) get the estimator
wrapped by :func:`sedna.backend.set_backend`, the worker identity from the environment, the
model path rule and ``report_task_info`` (a report to the LC with ``ownerInfo`` and
``results``, upstream's fields).
"""

from __future__ import annotations

import os
from typing import Any

from sedna.backend import set_backend
from sedna.common.class_factory import ClassFactory, ClassType
from sedna.common.config import BaseConfig, Context
from sedna.common.constant import K8sResourceKind
from sedna.common.file_ops import FileOps
from sedna.common.log import LOGGER
from sedna.service.client import LCClient


def resolve_post_process(post_process: Any) -> Any:
    """A callable ``post_process``, or the ``ClassType.CALLBACK`` class registered under that
    name (upstream's rule); ``None`` when none is given."""
    if post_process is None or callable(post_process):
        return post_process
    return ClassFactory.get_cls(ClassType.CALLBACK, post_process)


class JobBase:
    """Base of a feature: ``JobBase(estimator, config=None)``."""

    parameters = Context

    def __init__(self, estimator: Any, config: dict[str, Any] | None = None) -> None:
        self.config = BaseConfig()
        if config:
            self.config.from_json(config)
        self.log = LOGGER
        self.estimator = set_backend(estimator=estimator, config=self.config)
        self.job_kind = K8sResourceKind.DEFAULT.value
        self.job_name = self.config.job_name or ""
        self.worker_name = self.config.worker_name or self.job_name
        self.namespace = self.config.namespace or "default"
        self.lc_server = self.config.lc_server
        self.model_load_mode = self.get_parameters("MODEL_LOAD_MODE", "file")

    @property
    def model_path(self) -> str | None:
        """``MODEL_URL`` when it is a file (or the load mode is not ``file``), else the
        parameter ``model_path``, else ``MODEL_URL/<model name>``."""
        model_url = self.config.model_url
        if not model_url or self.model_load_mode != "file" or os.path.isfile(model_url):
            return model_url
        return self.get_parameters("model_path") or FileOps.join_path(
            model_url, self.estimator.model_name
        )

    def train(self, *args: Any, **kwargs: Any) -> Any:
        """Implemented by the features."""
        raise NotImplementedError(f"{type(self).__name__} does not train")

    def inference(self, x: Any = None, post_process: Any = None, **kwargs: Any) -> Any:
        """``estimator.predict(x)``, passed through ``post_process`` when given."""
        result = self.estimator.predict(x, **kwargs)
        callback = resolve_post_process(post_process)
        return callback(result) if callback else result

    def evaluate(self, data: Any, post_process: Any = None, **kwargs: Any) -> Any:
        """``estimator.evaluate(data)``, passed through ``post_process`` when given."""
        result = self.estimator.evaluate(data=data, **kwargs)
        callback = resolve_post_process(post_process)
        return callback(result) if callback else result

    def get_parameters(self, param: str, default: Any = None) -> Any:
        """A job parameter (``Context.get_parameters``)."""
        return self.parameters.get_parameters(param, default)

    def report_task_info(
        self,
        task_info: dict[str, Any] | None,
        status: str,
        results: Any = None,
        kind: str = "train",
    ) -> Any:
        """Report to the LC: ``task_info`` goes in ``ownerInfo``, ``results`` (model entries
        ``[{"format", "url", "metrics"}]``) in ``results``. Never raises."""
        message: dict[str, Any] = {
            "name": self.worker_name,
            "namespace": self.namespace,
            "ownerName": self.job_name,
            "ownerKind": self.job_kind,
            "kind": kind,
            "status": status,
        }
        if results:
            message["results"] = results
        if task_info:
            message["ownerInfo"] = task_info
        try:
            return LCClient.send(self.lc_server, self.worker_name, message)
        except Exception as error:  # reporting must never take the worker down
            self.log.error("reporting to the LC failed: %s", error)
            return None
