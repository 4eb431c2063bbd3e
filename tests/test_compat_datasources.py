"""Upstream Sedna's data source semantics: TxtDataParse, CSVDataParse, BaseDataSource."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sedna.common.class_factory import ClassFactory, ClassType
from sedna.common.errors import DataSourceError, UnsupportedError
from sedna.datasources import BaseDataSource, CSVDataParse, TxtDataParse


def test_base_data_source_as_upstream(tmp_path: Path) -> None:
    data = BaseDataSource(data_type="train")
    assert data.num_examples() == len(data) == 0
    data.x, data.y = [[1, 2], [3, 4]], [0, 1]
    assert len(data) == 2 and data.meta_attr is None
    assert data.is_test_data is False  # a property, as upstream
    assert BaseDataSource(data_type="test").is_test_data is True
    saved = data.save(str(tmp_path / "data.pkl"))
    from sedna.common.file_ops import FileOps

    assert FileOps.load(saved).x == [[1, 2], [3, 4]]


def test_func_by_registered_callback_name() -> None:
    @ClassFactory.register(ClassType.CALLBACK, alias="test-compat-upper")
    class Upper:
        def __call__(self, line: str) -> list[str]:
            return line.upper().split(",")

    data = BaseDataSource(func="test-compat-upper")
    assert data.process_func("a,b") == ["A", "B"]
    with pytest.raises(ValueError, match="unknown post_process_callback algorithm 'nope'"):
        BaseDataSource(func="nope")


def test_txt_default_split_on_whitespace(tmp_path: Path) -> None:
    index = tmp_path / "train.txt"
    index.write_text("images/a.png 1\n\n/abs/b.png 0 extra\nimages/c.png\n")
    data = TxtDataParse(data_type="train").parse(str(index))
    assert data is not None
    assert data.x.tolist() == ["images/a.png", "/abs/b.png", "images/c.png"]  # as written
    assert data.y.tolist() == ["1", "0", "0"]  # a missing label is 0 (upstream: int 0)
    assert len(data) == 3


def test_txt_func_gets_the_whole_stripped_line(tmp_path: Path) -> None:
    index = tmp_path / "train.txt"
    index.write_text("  a.png,1  \nb.png,0\n\n")
    seen: list[str] = []

    def image_process(line: str) -> list[object]:
        seen.append(line)
        path, label = line.split(",")  # upstream's example parse function
        return [np.full((2, 2), len(path)), np.array([int(label), 1 - int(label)])]

    data = TxtDataParse(data_type="train", func=image_process)
    data.parse(str(index))
    assert seen == ["a.png,1", "b.png,0"]
    assert data.x.shape == (2, 2, 2)
    np.testing.assert_array_equal(data.y, [[1, 0], [0, 1]])


def test_txt_use_raw_and_test_data(tmp_path: Path) -> None:
    index = tmp_path / "eval.txt"
    index.write_text("a.png 1\nb.png 0\n")
    raw = TxtDataParse(data_type="eval").parse(str(index), use_raw=True)
    assert raw.x.tolist() == [["a.png", "1"], ["b.png", "0"]]
    assert raw.y.size == 0
    test = TxtDataParse(data_type="test").parse(str(index))
    assert test.x.tolist() == ["a.png", "b.png"] and test.y.size == 0


def test_txt_unset_url_is_skipped_and_a_missing_file_is_an_error(tmp_path: Path) -> None:
    # Upstream's FL example parses TEST_DATASET_URL even when it is unset.
    empty = TxtDataParse(data_type="test").parse(None)
    assert len(empty) == 0 and not empty
    with pytest.raises(FileNotFoundError, match=r"dataset index file not found: .*missing\.txt"):
        TxtDataParse(data_type="train").parse(str(tmp_path / "missing.txt"))
    index = tmp_path / "x.txt"
    index.write_text("a\n")
    with pytest.raises(DataSourceError, match="line 1: func returned int"):
        TxtDataParse(data_type="train", func=lambda line: 3).parse(str(index))


def test_txt_parse_replaces_previous_samples(tmp_path: Path) -> None:
    one, two = tmp_path / "1.txt", tmp_path / "2.txt"
    one.write_text("a 1\n")
    two.write_text("b 0\nc 1\n")
    data = TxtDataParse(data_type="train")
    data.parse(str(one))
    data.parse(str(one), str(two))
    assert data.x.tolist() == ["a", "b", "c"]


def test_csv_reads_with_pandas_and_gives_func_the_dataframe(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("temperature,city,label\n20.5,paris,1\n30,rome,0\n")
    calls: list[pd.DataFrame] = []

    def feature_process(df: pd.DataFrame) -> pd.DataFrame:
        calls.append(df)
        df["city"] = df["city"].apply(len)  # upstream's feature functions work on columns
        return df

    data = CSVDataParse(data_type="train", func=feature_process)
    data.parse(str(path), label="label")
    assert len(calls) == 1 and list(calls[0].columns) == ["temperature", "city", "label"]
    assert isinstance(data.x, pd.DataFrame) and list(data.x.columns) == ["temperature", "city"]
    assert isinstance(data.y, pd.Series) and data.y.tolist() == [1, 0]
    assert data.x["city"].tolist() == [5, 4]
    assert len(data) == 2


def test_csv_usecols_and_several_files(tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("f1,f2,y\n1,2,0\n")
    second.write_text("f1,f2,y\n3,4,1\n")
    data = CSVDataParse(data_type="train").parse(str(first), str(second), label="y", usecols="f2")
    assert list(data.x.columns) == ["f2"] and data.x["f2"].tolist() == [2, 4]
    assert data.y.tolist() == [0, 1]


def test_csv_one_row_as_dict() -> None:
    data = CSVDataParse(data_type="test", func=lambda df: df.assign(t=df["t"].astype(float)))
    data.parse({"t": "21.5", "humidity": "40", "label": "2"}, label="label")
    assert data.x.to_dict("records") == [{"t": 21.5, "humidity": "40"}]
    assert data.y.tolist() == ["2"]
    data.parse([{"t": "1", "label": "0"}, {"t": "2", "label": "1"}], label="label")
    assert data.x["t"].tolist() == [1.0, 2.0]


def test_csv_errors_name_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"CSV file not found: .*missing\.csv"):
        CSVDataParse(data_type="train").parse(str(tmp_path / "missing.csv"), label="y")
    path = tmp_path / "data.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(DataSourceError, match="label column 'y' not in the columns: a, b"):
        CSVDataParse(data_type="train").parse(str(path), label="y")
    # Test data may come without its label column.
    unlabelled = CSVDataParse(data_type="test").parse(str(path), label="y")
    assert list(unlabelled.x.columns) == ["a", "b"] and unlabelled.y is None
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataSourceError, match="cannot read CSV"):
        CSVDataParse(data_type="train").parse(str(empty))


def test_remote_dataset_urls_are_refused() -> None:
    from sedna.common.file_ops import FileOps

    with pytest.raises(UnsupportedError, match=r"s3://bucket/train.txt: s3:// storage is not"):
        FileOps.download("s3://bucket/train.txt")
