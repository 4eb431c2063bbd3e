"""Parsers of dataset index files: ``txt`` (one sample per line) and ``csv`` (header row)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sedna.common.errors import DataSourceError
from sedna.datasources.base import BaseDataSource


def _index_file(path: str | Path) -> Path:
    index = Path(path).expanduser()
    if not index.is_file():
        what = "is a directory" if index.is_dir() else "not found"
        raise FileNotFoundError(f"dataset index file {what}: {index}")
    return index


class TxtDataParse(BaseDataSource):
    """A ``txt`` index: each line is ``<sample path> <label>`` or just ``<sample path>``.

    Relative sample paths are resolved against the index file's directory; blank lines and
    lines starting with ``#`` are skipped. ``x`` holds the sample paths (or ``func(path)`` when
    a ``func`` is given, e.g. an image loader) and ``y`` the labels as strings, or ``None``
    when no line has a label. Paths containing spaces are not supported.
    """

    def __init__(self, data_type: str = "train", func: Callable[[str], Any] | None = None) -> None:
        super().__init__(data_type=data_type, func=func)

    def parse(self, *paths: str | Path, **kwargs: Any) -> TxtDataParse:
        """Read the index files in order and append their samples; returns ``self``."""
        if not paths:
            raise DataSourceError("TxtDataParse.parse needs at least one index file")
        samples: list[Any] = [] if self.x is None else list(self.x)
        labels: list[str | None] = (
            [None] * len(samples) if self.y is None else [str(y) for y in self.y]
        )
        for path in paths:
            for sample, label in self._read(_index_file(path)):
                samples.append(self.process_func(sample) if self.process_func else sample)
                labels.append(label)
        labelled = sum(label is not None for label in labels)
        if 0 < labelled < len(labels):
            raise DataSourceError(
                f"{labelled} of {len(labels)} samples have a label: label every line of "
                f"{', '.join(map(str, paths))} or none"
            )
        self.x = samples
        self.y = labels if labelled else None
        return self

    @staticmethod
    def _read(index: Path) -> Iterator[tuple[str, str | None]]:
        base = index.parent
        with index.open(encoding="utf-8") as lines:
            for line in lines:
                text = line.strip()
                if not text or text.startswith("#"):
                    continue
                sample, _, label = text.partition(" ")
                sample_path = Path(sample).expanduser()
                if not sample_path.is_absolute():
                    sample_path = base / sample_path
                yield str(sample_path), (label.strip() or None)


class CSVDataParse(BaseDataSource):
    """A ``csv`` index with a header row; ``label`` names the label column.

    ``x`` is a 2-D array of the other columns (float when every value is a number, else
    strings) and ``y`` the label column (likewise); ``feature_names`` lists ``x``'s columns.
    ``func``, when given, is applied to each row of ``x``.
    """

    def __init__(
        self, data_type: str = "train", func: Callable[[np.ndarray], Any] | None = None
    ) -> None:
        super().__init__(data_type=data_type, func=func)
        self.feature_names: list[str] = []

    def parse(self, *paths: str | Path, label: str | None = None, **kwargs: Any) -> CSVDataParse:
        """Read the CSV files (same header each) into ``x``/``y``; returns ``self``."""
        if not paths:
            raise DataSourceError("CSVDataParse.parse needs at least one CSV file")
        header: list[str] | None = None
        rows: list[list[str]] = []
        for path in paths:
            file_header, file_rows = self._read(_index_file(path))
            if header is not None and file_header != header:
                raise DataSourceError(
                    f"{path}: header {file_header} differs from the first file's {header}"
                )
            header = file_header
            rows.extend(file_rows)
        assert header is not None
        if label is not None and label not in header:
            raise DataSourceError(f"label column {label!r} not in the header: {', '.join(header)}")
        table = np.array(rows, dtype=str).reshape(len(rows), len(header))
        features = [i for i, name in enumerate(header) if name != label]
        self.feature_names = [header[i] for i in features]
        x = _as_numbers(table[:, features])
        if self.process_func is not None:
            x = np.asarray([self.process_func(row) for row in x])
        self.x = x
        self.y = _as_numbers(table[:, header.index(label)]) if label is not None else None
        return self

    @staticmethod
    def _read(path: Path) -> tuple[list[str], list[list[str]]]:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if not header or not any(name.strip() for name in header):
                raise DataSourceError(f"{path}: empty CSV file, expected a header row")
            header = [name.strip() for name in header]
            rows: list[list[str]] = []
            for row in reader:
                if not row or not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise DataSourceError(
                        f"{path}, line {reader.line_num}: {len(row)} values, "
                        f"expected {len(header)} ({', '.join(header)})"
                    )
                rows.append([cell.strip() for cell in row])
        return header, rows


def _as_numbers(values: np.ndarray) -> np.ndarray:
    try:
        return values.astype(np.float64)
    except ValueError:
        return values
