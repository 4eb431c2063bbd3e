"""``IncrementalLearning``: upstream Sedna's API for the train, eval and inference workers.

* ``train`` fits the estimator on the round's samples, starting from ``BASE_MODEL_URL`` (the
  previous round's model; upstream leaves loading it to the script), saves it under
  ``MODEL_URL`` and reports the model to the LC, which completes the Train stage.
* ``evaluate`` scores every model of ``MODEL_URLS`` (the trained one, then the deployed one) and
  reports their metrics, from which the GM decides the deploy.
* ``inference`` predicts, judges the result with hard example mining and returns
  ``(infer_result, result, is_hard_example)``; hard samples are saved under ``HE_SAVED_URL``
  (:class:`HardExampleStore`). With ``MODEL_HOT_UPDATE=true`` a thread polls
  ``MODEL_HOT_UPDATE_CONFIG`` and swaps in each new model without a restart; a model that fails
  to load leaves the old one serving, and both outcomes are reported (``kind: deploy``).
"""

from __future__ import annotations

import copy
import inspect
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sedna.algorithms.hard_example_mining import BaseFilter, parse_hem_parameters, resolve_hem
from sedna.common.config import BaseConfig, Context
from sedna.common.estimator import resolve_estimator
from sedna.common.log import ensure_logging, get_logger
from sedna.common.report import LCReporter, WorkerStatus
from sedna.core.incremental_learning.hard_examples import HardExampleStore
from sedna.core.incremental_learning.hot_update import ModelHotUpdater, poll_period

LOG = get_logger("incremental_learning")

OWNER_KIND = "incrementallearningjob"
DEFAULT_MODEL_NAME = "model.pkl"
DEFAULT_REPORT_INTERVAL_SECONDS = 5.0


def _accepted(method: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The ``kwargs`` ``method`` takes (all of them when it has ``**kwargs``)."""
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return kwargs
    names = {p.name for p in parameters}
    return {k: v for k, v in kwargs.items() if k in names}


def _reported_url(path: str) -> str:
    """``path`` minus ``DATA_PATH_PREFIX`` when it is set (as upstream reports mounted paths;
    ``BaseConfig.data_path_prefix`` reads upstream's default ``/home/data`` when unset)."""
    prefix = os.environ.get("DATA_PATH_PREFIX")
    return path[len(prefix) :] if prefix and path.startswith(prefix) else path


def _model_format(path: str) -> str:
    return Path(path).suffix.lstrip(".") or "unknown"


def _metrics(result: Any) -> dict[str, Any]:
    """What an estimator's train/evaluate returned, as reportable metrics."""
    if not isinstance(result, dict):
        return {}
    out: dict[str, Any] = {}
    for key, value in result.items():
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            out[str(key)] = value
        elif isinstance(value, Sequence) and all(isinstance(v, int | float) for v in value):
            out[str(key)] = [float(v) for v in value]
        elif hasattr(value, "tolist"):  # numpy scalars and arrays
            out[str(key)] = value.tolist()
    return out


class IncrementalLearning:
    """One worker of an incremental learning job (train, eval or inference)."""

    def __init__(
        self,
        estimator: Any,
        hard_example_mining: BaseFilter | str | dict[str, Any] | None = None,
        *,
        reporter: LCReporter | None = None,
        report_interval: float | None = None,
    ) -> None:
        ensure_logging()
        self._factory = estimator
        self.estimator = resolve_estimator(estimator, ())
        self.hard_example_mining = resolve_hem(hard_example_mining)
        self.reporter = reporter or LCReporter.from_env()
        self._deploy_reporter = LCReporter.from_env() if reporter is None else reporter
        self.report_interval = (
            report_interval
            if report_interval is not None
            else float(os.environ.get("REPORT_INTERVAL_SECONDS") or DEFAULT_REPORT_INTERVAL_SECONDS)
        )
        self.model_lock = threading.Lock()
        self.model_loaded = False
        self.model_url: str | None = None  # what the served estimator was loaded from
        self.inference_number = 0
        self.hard_example_number = 0
        self.inference_ready_number = 0  # handed to the model, not answered yet
        self.inference_error_number = 0  # whose inference raised
        self._last_report = 0.0
        saved = os.environ.get("HE_SAVED_URL")
        self.hard_examples = (
            HardExampleStore(saved, os.environ.get("WORKER_NAME")) if saved else None
        )
        self.hot_updater: ModelHotUpdater | None = None
        if (
            BaseConfig.model_hot_update or ""
        ).lower() == "true" and BaseConfig.model_hot_update_config:
            self.hot_updater = ModelHotUpdater(
                Path(BaseConfig.model_hot_update_config),
                self.load_model,
                poll_period(BaseConfig.model_poll_period_seconds),
            ).start()

    @classmethod
    def get_hem_algorithm_from_config(cls, **param: Any) -> dict[str, Any]:
        """``{"method": HEM_NAME, "param": {...}}`` from the job's ``hardExampleMining``, with
        ``param`` over ``HEM_PARAMETERS`` (code wins, as upstream); ``{}`` without ``HEM_NAME``."""
        name = os.environ.get("HEM_NAME")
        if not name:
            return {}
        return {
            "method": name,
            "param": {**parse_hem_parameters(os.environ.get("HEM_PARAMETERS")), **param},
        }

    # -- models ------------------------------------------------------------------------

    @property
    def model_path(self) -> str:
        """Where ``train`` saves: ``MODEL_URL`` if it names a file, else a file in it."""
        url = BaseConfig.model_url or "."
        if Path(url).suffix:
            return url
        return str(Path(url) / str(Context.get_parameters("model_name", DEFAULT_MODEL_NAME)))

    def _fresh_estimator(self) -> Any:
        """A new estimator to load a model into (the served one stays untouched)."""
        if isinstance(self._factory, type):
            return self._factory()
        return copy.deepcopy(self.estimator)

    def load_model(self, model_path: str, version: str | None = None) -> bool:
        """Load ``model_path`` into a fresh estimator and swap it in; on failure keep serving the
        old model. Either way report it (``kind: deploy``); True when the new model serves."""
        try:
            fresh = self._fresh_estimator()
            resolve_estimator(fresh, ("load",)).load(model_path)
        except Exception as error:
            LOG.error(
                "new model failed to load; the old one keeps serving",
                extra={"model_path": model_path, "error": f"{type(error).__name__}: {error}"},
            )
            self._report_deploy("failed", model_path, f"{type(error).__name__}: {error}")
            return False
        with self.model_lock:
            self.estimator, self.model_loaded, self.model_url = fresh, True, model_path
        LOG.info("model loaded", extra={"model_path": model_path, "version": version})
        self._report_deploy("completed", model_path, None)
        return True

    def _report_deploy(self, status: WorkerStatus, model_path: str, error: str | None) -> None:
        info = {"message": error} if error else None
        model = {"format": _model_format(model_path), "url": _reported_url(model_path)}
        report = self._deploy_reporter.build(
            owner_kind=OWNER_KIND, kind="deploy", status=status, task_info=info, models=[model]
        )
        self._deploy_reporter.report(report)

    def _ensure_loaded(self) -> None:
        if self.model_loaded:
            return
        url = BaseConfig.model_url
        if url and Path(url).is_file():
            with self.model_lock:
                if not self.model_loaded:
                    resolve_estimator(self.estimator, ("load",)).load(url)
                    self.model_loaded, self.model_url = True, url
                    LOG.info("model loaded", extra={"model_path": url})

    # -- train and eval ---------------------------------------------------------------

    def train(
        self,
        train_data: Any,
        valid_data: Any = None,
        post_process: Callable[[Any], Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Train from ``BASE_MODEL_URL`` on ``train_data``, save to :attr:`model_path`, report
        the model. A failure is reported (the Train stage fails) and raised."""
        try:
            base = BaseConfig.base_model_url
            if base and Path(base).is_file() and callable(getattr(self.estimator, "load", None)):
                self.estimator.load(base)
                LOG.info("training from the base model", extra={"base_model_url": base})
            train = resolve_estimator(self.estimator, ("train", "save")).train
            args = _accepted(train, {"train_data": train_data, "valid_data": valid_data, **kwargs})
            result = train(**args)
            path = self.model_path
            saved = self.estimator.save(path)
            path = saved if isinstance(saved, str) and saved else path
        except Exception as error:
            self._report(
                "train", "failed", task_info={"message": f"{type(error).__name__}: {error}"}
            )
            raise
        model = {
            "format": _model_format(path),
            "url": _reported_url(path),
            "metrics": _metrics(result),
        }
        self._report("train", "completed", models=[model])
        LOG.info("model trained", extra={"model_path": path})
        return post_process(self.estimator) if post_process else self.estimator

    def evaluate(
        self, data: Any, post_process: Callable[[Any], Any] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]]:
        """Score each model of ``MODEL_URLS`` (else ``MODEL_URL``) on ``data`` and report the
        results, one ``{format, url, metrics}`` per model in order. The estimator's
        ``evaluate`` gets ``data`` as its first argument, then ``model_path`` and ``kwargs``."""
        urls = [u for u in (BaseConfig.model_urls or "").split(";") if u] or [
            BaseConfig.model_url or ""
        ]
        results = []
        try:
            for url in urls:
                estimator = self._fresh_estimator()
                resolve_estimator(estimator, ("load", "evaluate")).load(url)
                # positional: upstream's estimators name it ``valid_data`` or ``data``
                args = _accepted(estimator.evaluate, {"model_path": url, **kwargs})
                metrics = estimator.evaluate(data, **args)
                if post_process is not None:
                    metrics = post_process(metrics)
                results.append(
                    {
                        "format": _model_format(url),
                        "url": _reported_url(url),
                        "metrics": _metrics(metrics),
                    }
                )
        except Exception as error:
            self._report(
                "eval", "failed", task_info={"message": f"{type(error).__name__}: {error}"}
            )
            raise
        self._report("eval", "completed", models=results)
        LOG.info("models evaluated", extra={"results": results})
        return results

    # -- inference --------------------------------------------------------------------

    def inference(
        self, data: Any = None, post_process: Callable[[Any], Any] | None = None, **kwargs: Any
    ) -> tuple[Any, Any, bool]:
        """``(infer_result, result, is_hard_example)`` for one sample; ``result`` is
        ``post_process(infer_result)`` (or ``infer_result``), which mining judges."""
        self._ensure_loaded()
        self.inference_ready_number += 1
        try:
            with self.model_lock:
                infer_result = self.estimator.predict(data, **kwargs)
        except Exception:
            self.inference_error_number += 1
            raise
        finally:
            self.inference_ready_number -= 1
        result = post_process(infer_result) if post_process is not None else infer_result
        is_hard = bool(self.hard_example_mining(result)) if self.hard_example_mining else False
        self.inference_number += 1
        if is_hard:
            self.hard_example_number += 1
            if self.hard_examples is not None:
                self.hard_examples.save(data)
        if time.monotonic() - self._last_report >= self.report_interval:
            self.report_progress()
        return infer_result, result, is_hard

    def report_progress(self, **extra: Any) -> bool:
        """Report the inference counts (and ``extra`` taskInfo fields) to the LC now."""
        self._last_report = time.monotonic()
        info = {
            "inferenceNumber": self.inference_number,
            "hardExampleNumber": self.hard_example_number,
            "readyNumber": self.inference_ready_number,
            "errorNumber": self.inference_error_number,
            **extra,
        }
        return self._report("inference", "running", task_info=info)

    def _report(
        self,
        kind: str,
        status: WorkerStatus,
        *,
        task_info: dict[str, Any] | None = None,
        models: list[dict[str, Any]] | None = None,
    ) -> bool:
        report = self.reporter.build(
            owner_kind=OWNER_KIND, kind=kind, status=status, task_info=task_info, models=models
        )
        return self.reporter.report(report)

    def close(self) -> None:
        """Stop the hot-update thread and send the last counts."""
        if self.hot_updater is not None:
            self.hot_updater.stop()
        if self.inference_number:
            self.report_progress()
