"""Worker library basics: configuration, class factory, data sources, logging."""

from __future__ import annotations

import io
import json
import logging

import pytest

import sedna.algorithms.hard_example_mining  # noqa: F401  (registers the HEM algorithms)
from sedna.common.class_factory import ClassFactory, ClassType
from sedna.common.config import BaseConfig, Context
from sedna.common.errors import ConfigError, UnknownAlgorithmError
from sedna.common.estimator import Estimator, resolve_estimator
from sedna.common.log import get_logger, setup_logging


def test_context_looks_up_name_then_upper_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("batch_size", raising=False)
    monkeypatch.delenv("BATCH_SIZE", raising=False)
    assert Context.get_parameters("batch_size") is None
    assert Context.get_parameters("batch_size", "32") == "32"
    monkeypatch.setenv("BATCH_SIZE", "64")
    assert Context.get_parameters("batch_size", "32") == "64"
    monkeypatch.setenv("batch_size", "16")
    assert Context.get_parameters("batch_size") == "16"


def test_base_config_reads_environment_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_URL", "/models/a.pkl")
    assert BaseConfig.model_url == "/models/a.pkl"
    monkeypatch.setenv("MODEL_URL", "/models/b.pkl")
    assert BaseConfig.model_url == "/models/b.pkl"
    monkeypatch.delenv("BIG_MODEL_IP", raising=False)
    assert BaseConfig.big_model_ip is None
    monkeypatch.delenv("JOB_NAME", raising=False)
    monkeypatch.setenv("SERVICE_NAME", "digits")
    assert BaseConfig.resource_name() == "digits"
    with pytest.raises(AttributeError, match="no setting 'nonsense'"):
        _ = BaseConfig.nonsense


def test_class_factory_register_and_lookup() -> None:
    @ClassFactory.register(ClassType.GENERAL, alias="test-worker-common-plugin")
    class Plugin:
        def __init__(self, size: int = 1) -> None:
            self.size = size

    assert ClassFactory.get_cls(ClassType.GENERAL, "test-worker-common-plugin") is Plugin
    assert ClassFactory.is_exists(ClassType.GENERAL, "test-worker-common-plugin")
    assert ClassFactory.create(ClassType.GENERAL, "test-worker-common-plugin", size=3).size == 3
    # Registering the same class again is harmless; a different class under the name is not.
    ClassFactory.register_cls(Plugin, ClassType.GENERAL, "test-worker-common-plugin")

    class Other:
        pass

    with pytest.raises(ValueError, match="already registered"):
        ClassFactory.register_cls(Other, ClassType.GENERAL, "test-worker-common-plugin")
    with pytest.raises(UnknownAlgorithmError, match=r"known: .*test-worker-common-plugin"):
        ClassFactory.get_cls(ClassType.GENERAL, "missing")
    with pytest.raises(TypeError, match="only classes"):
        ClassFactory.register_cls(len, ClassType.GENERAL)  # type: ignore[arg-type]
    assert {"IBT", "CrossEntropy", "ThresholdFilter"} <= set(ClassFactory.names(ClassType.HEM))


class _Model:
    def predict(self, data: object, **kwargs: object) -> object:
        return data


def test_resolve_estimator() -> None:
    assert isinstance(resolve_estimator(_Model), _Model)
    model = _Model()
    assert resolve_estimator(model) is model
    with pytest.raises(TypeError, match=r"lacks required method.*load"):
        resolve_estimator(model, required=("predict", "load"))
    assert not isinstance(model, Estimator)  # only predict: not a full Estimator


def test_json_logs_carry_worker_context(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_NAME", "edge-1")
    monkeypatch.setenv("NAMESPACE", "ns")
    monkeypatch.setenv("NODE_NAME", "edge0")
    monkeypatch.setenv("JOB_KIND", "jointinferenceservice")
    monkeypatch.delenv("JOB_NAME", raising=False)
    monkeypatch.setenv("SERVICE_NAME", "digits")
    stream = io.StringIO()
    setup_logging(level="DEBUG", stream=stream)
    try:
        get_logger("test").info("hello %s", "world", extra={"samples": 3})
        entry = json.loads(stream.getvalue().strip())
        assert entry["message"] == "hello world"
        assert entry["level"] == "info"
        assert entry["logger"] == "sedna.test"
        assert entry["samples"] == 3
        assert (entry["job"], entry["kind"], entry["namespace"]) == (
            "digits",
            "jointinferenceservice",
            "ns",
        )
        assert (entry["node"], entry["worker"]) == ("edge0", "edge-1")
        with pytest.raises(ConfigError, match="unknown log level 'LOUD'"):
            setup_logging(level="LOUD", stream=stream)
    finally:
        for handler in list(logging.getLogger("sedna").handlers):
            logging.getLogger("sedna").removeHandler(handler)
        logging.getLogger("sedna").propagate = True
