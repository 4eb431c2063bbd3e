"""Worker library basics: configuration, class factory, data sources, logging."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest

import sedna.algorithms.hard_example_mining  # noqa: F401  (registers the HEM algorithms)
from sedna.common.class_factory import ClassFactory, ClassType
from sedna.common.config import BaseConfig, Context
from sedna.common.errors import ConfigError, DataSourceError, UnknownAlgorithmError
from sedna.common.estimator import Estimator, resolve_estimator
from sedna.common.log import get_logger, setup_logging
from sedna.datasources import BaseDataSource, CSVDataParse, TxtDataParse


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


def test_base_data_source() -> None:
    data = BaseDataSource(data_type="train")
    assert data.num_examples() == 0
    data.x = [[1, 2], [3, 4]]
    data.y = [0, 1]
    assert data.num_examples() == 2
    assert not data.is_test_data()
    assert BaseDataSource(data_type="test").is_test_data()


def test_txt_parse_labels_and_relative_paths(tmp_path: Path) -> None:
    index = tmp_path / "data" / "train.txt"
    index.parent.mkdir()
    index.write_text("# samples\nimages/a.png 1\n\n/abs/b.png 0\nimages/c.png helmet on\n")
    data = TxtDataParse(data_type="train").parse(index)
    assert data.x == [
        str(tmp_path / "data" / "images" / "a.png"),
        "/abs/b.png",
        str(tmp_path / "data" / "images" / "c.png"),
    ]
    assert data.y == ["1", "0", "helmet on"]
    assert data.num_examples() == 3


def test_txt_parse_without_labels_and_with_func(tmp_path: Path) -> None:
    index = tmp_path / "test.txt"
    index.write_text("a.png\nb.png\n")
    data = TxtDataParse(data_type="test", func=lambda path: Path(path).name.upper()).parse(index)
    assert data.x == ["A.PNG", "B.PNG"]
    assert data.y is None


def test_txt_parse_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"dataset index file not found: .*missing\.txt"):
        TxtDataParse().parse(tmp_path / "missing.txt")
    mixed = tmp_path / "mixed.txt"
    mixed.write_text("a.png 1\nb.png\n")
    with pytest.raises(DataSourceError, match="1 of 2 samples have a label"):
        TxtDataParse().parse(mixed)
    with pytest.raises(DataSourceError, match="at least one"):
        TxtDataParse().parse()


def test_csv_parse(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("f1,f2,label\n1,2.5,0\n3,4,1\n\n")
    data = CSVDataParse(data_type="train").parse(path, label="label")
    assert data.feature_names == ["f1", "f2"]
    np.testing.assert_array_equal(data.x, [[1.0, 2.5], [3.0, 4.0]])
    np.testing.assert_array_equal(data.y, [0.0, 1.0])
    assert data.num_examples() == 2
    unlabelled = CSVDataParse(data_type="test").parse(path)
    assert unlabelled.y is None and unlabelled.x.shape == (2, 3)


def test_csv_parse_text_values(tmp_path: Path) -> None:
    path = tmp_path / "text.csv"
    path.write_text("city,label\nparis,yes\n")
    data = CSVDataParse().parse(path, label="label")
    assert data.x.tolist() == [["paris"]]
    assert data.y.tolist() == ["yes"]


def test_csv_parse_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        CSVDataParse().parse(tmp_path / "missing.csv", label="y")
    path = tmp_path / "data.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(DataSourceError, match="label column 'y' not in the header: a, b"):
        CSVDataParse().parse(path, label="y")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3\n")
    with pytest.raises(DataSourceError, match="line 3: 1 values, expected 2"):
        CSVDataParse().parse(ragged)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataSourceError, match="empty CSV"):
        CSVDataParse().parse(empty)


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
