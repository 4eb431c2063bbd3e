"""The estimator wrapper of upstream Sedna's backends (``BackendBase``)."""

from __future__ import annotations

import glob
import inspect
import os
import threading
from collections.abc import Callable
from typing import Any

from sedna.common.errors import SednaError
from sedna.common.file_ops import FileOps

# BACKEND_TYPE -> framework name (which picks the default model file suffix).
FRAMEWORKS: dict[str, str] = {
    "TENSORFLOW": "tensorflow",
    "KERAS": "keras",
    "TORCH": "pytorch",
    "MINDSPORE": "mindspore",
    "SKLEARN": "sklearn",
    "NUMPY": "numpy",
}
_SUFFIXES = {"pytorch": ".pth", "keras": ".pb", "tensorflow": ".pb", "mindspore": ".ckpt"}


def parse_kwargs(func: Callable[..., Any] | Any, **kwargs: Any) -> dict[str, Any]:
    """The ``kwargs`` that ``func`` accepts (all of them when it takes ``**kwargs``)."""
    if not callable(func):
        return kwargs
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return kwargs
    parameters = signature.parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return kwargs
    names = {
        p.name
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    return {key: value for key, value in kwargs.items() if key in names}


class BackendBase:
    """Wraps a user's estimator (an instance, or a class built on first use).

    Methods pass only the keyword arguments the estimator's method accepts, so one script can
    hand the same hyper-parameters to estimators that take different ones.
    """

    def __init__(
        self, estimator: Any, fine_tune: bool = True, framework: str = "", **kwargs: Any
    ) -> None:
        self.framework = framework
        self.estimator = estimator
        self.use_cuda = bool(kwargs.get("use_cuda"))
        self.use_npu = bool(kwargs.get("use_npu"))
        self.fine_tune = fine_tune
        self.model_save_path: str = kwargs.get("model_save_path") or "/tmp"
        self.default_name: str | None = kwargs.get("model_name")
        self.model_save_url: str | None = kwargs.get("model_save_url")
        self.has_load = False

    parse_kwargs = staticmethod(parse_kwargs)

    @property
    def model_name(self) -> str:
        """``MODEL_NAME``, else ``model[_finetune_]<framework><suffix>`` (upstream's rule)."""
        if self.default_name:
            return self.default_name
        flag = "_finetune_" if self.fine_tune else ""
        return f"model{flag}{self.framework}{_SUFFIXES.get(self.framework, '.pkl')}"

    def instance(self, **kwargs: Any) -> Any:
        """The estimator instance (a class given is instantiated with the kwargs it takes)."""
        if isinstance(self.estimator, type):
            self.estimator = self.estimator(**parse_kwargs(self.estimator, **kwargs))
        return self.estimator

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        target = getattr(self.instance(**kwargs), method)
        return target(*args, **parse_kwargs(target, **kwargs))

    def train(self, *args: Any, **kwargs: Any) -> Any:
        """``estimator.fit`` when it has one, else ``estimator.train``."""
        estimator = self.instance(**kwargs)
        method = "fit" if callable(getattr(estimator, "fit", None)) else "train"
        return self._call(method, *args, **kwargs)

    def update(self, *args: Any, **kwargs: Any) -> Any:
        """``estimator.fit`` when it has one, else ``estimator.update``."""
        estimator = self.instance(**kwargs)
        method = "fit" if callable(getattr(estimator, "fit", None)) else "update"
        return self._call(method, *args, **kwargs)

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        """``estimator.predict``."""
        return self._call("predict", *args, **kwargs)

    def predict_proba(self, *args: Any, **kwargs: Any) -> Any:
        """``estimator.predict_proba``."""
        return self._call("predict_proba", *args, **kwargs)

    def evaluate(self, *args: Any, **kwargs: Any) -> Any:
        """``estimator.evaluate``."""
        return self._call("evaluate", *args, **kwargs)

    def get_weights(self) -> Any:
        """``estimator.get_weights()``."""
        return self.instance().get_weights()

    def set_weights(self, weights: Any) -> None:
        """``estimator.set_weights(weights)``."""
        self.instance().set_weights(weights)

    def model_path(self, model_name: str | None = None) -> str:
        """Where :meth:`save` writes: ``MODEL_URL`` itself when it names a file (an existing
        one, or one with a suffix such as ``.pkl``), else ``MODEL_URL/<model_name>``."""
        base = self.model_save_path
        if os.path.isfile(base) or (os.path.splitext(base)[1] and not os.path.isdir(base)):
            return base
        return FileOps.join_path(base, model_name or self.model_name)

    def save(self, model_url: str = "", model_name: str | None = None) -> str:
        """``estimator.save(path)`` at :meth:`model_path` (copied to ``model_url`` when
        given); returns where the model is.

        The estimator writes a temporary name in the same directory (same suffix) that is
        then renamed into place, so a reader never sees a half-written model. A suffix the
        estimator adds (``numpy.savez`` adds ``.npz``) is kept.
        """
        path = self.model_path(model_name)
        FileOps.make_base_dir(path)
        directory, name = os.path.split(path)
        temporary = os.path.join(directory, f".tmp-{os.getpid()}-{threading.get_ident()}-{name}")
        self.instance().save(temporary)
        written = temporary if os.path.exists(temporary) else None
        if written is None:
            added = sorted(glob.glob(glob.escape(temporary) + ".*"))
            if not added:
                raise SednaError(f"estimator.save({temporary!r}) wrote no file there")
            written = added[0]
        final = path + written[len(temporary) :]
        if os.path.isdir(written) and os.path.isdir(final):
            FileOps.delete(final)
        os.replace(written, final)
        if model_url and FileOps.exists(final):
            return FileOps.upload(final, model_url, clean=False)
        return final

    def load(self, model_url: str = "", model_name: str | None = None, **kwargs: Any) -> Any:
        """``estimator.load(model_url=path)`` of ``model_url`` (else :meth:`model_path`);
        nothing when the file is missing or the estimator has no ``load``."""
        estimator = self.instance(**kwargs)
        path = model_url or self.model_path(model_name)
        self.has_load = True
        if not (callable(getattr(estimator, "load", None)) and os.path.exists(path)):
            return None
        load = estimator.load
        if "model_url" in inspect.signature(load).parameters:
            return load(model_url=path)
        return load(path)

    def model_info(
        self, model: str, relpath: str | None = None, result: Any = None
    ) -> list[dict[str, Any]]:
        """Upstream's report entry ``[{"format", "url", "metrics"}]`` for the model file."""
        suffix = os.path.splitext(model)[1]
        url = FileOps.remove_path_prefix(model, relpath) if relpath else model
        return [{"format": suffix.lstrip("."), "url": url, "metrics": result}]

    def __getattr__(self, name: str) -> Any:
        # Anything else the estimator offers (e.g. a script's own helper methods).
        if name.startswith("_") or name == "estimator":
            raise AttributeError(name)
        return getattr(self.instance(), name)
