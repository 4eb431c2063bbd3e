"""Parsers of dataset index files with upstream Sedna's semantics: ``txt`` and ``csv``.

``TxtDataParse``: one sample per line. ``func`` (when given) gets each whole stripped line and
returns a sequence; otherwise the line is split on whitespace. ``x`` takes item 0 and ``y``
item 1 (``0`` when absent; test data has no ``y``), or ``x`` the whole sequence with
``use_raw=True``. Sample paths are kept as written (scripts resolve them, e.g. against
``dirname(ORIGINAL_DATASET_URL)``).

``CSVDataParse``: read with pandas; ``func`` gets the whole DataFrame; ``label`` names the
column that becomes ``y`` (a Series) and leaves ``x`` (a DataFrame). A dict is parsed as one
row (a list of dicts as rows), as upstream's lifelong learning inference does per sample.

Each ``parse`` replaces ``x``/``y`` and returns the data source. Differences from upstream
(an index file that is named but missing is an error, not skipped; blank lines never reach
``func``) are listed in docs/compatibility.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sedna.common.errors import DataSourceError
from sedna.datasources.base import BaseDataSource

if TYPE_CHECKING:
    import pandas as pd


def _index_files(sources: Sequence[Any], what: str) -> list[str]:
    """The paths among ``sources``; ``None``/empty ones are skipped (upstream's rule), a
    named file that does not exist is an error."""
    files: list[str] = []
    for source in sources:
        if source is None or source == "":
            continue
        path = Path(str(source).removeprefix("file://")).expanduser()
        if not path.is_file():
            problem = "is a directory" if path.is_dir() else "not found"
            raise FileNotFoundError(f"{what} {problem}: {path}")
        files.append(str(path))
    return files


def _array(items: list[Any]) -> np.ndarray:
    """``np.array(items)``, or a 1-D object array when the items have different shapes."""
    try:
        return np.array(items)
    except ValueError:
        ragged = np.empty(len(items), dtype=object)
        ragged[:] = items
        return ragged


class TxtDataParse(BaseDataSource):
    """A ``txt`` index: one sample per line (see the module docstring)."""

    def __init__(self, data_type: str = "train", func: Callable[[str], Any] | None = None) -> None:
        super().__init__(data_type=data_type, func=func)

    def parse(self, *args: Any, use_raw: bool = False, **kwargs: Any) -> TxtDataParse:
        """Read the index files in order into ``x``/``y``; returns ``self``."""
        x_data: list[Any] = []
        y_data: list[Any] = []
        for path in _index_files(args, "dataset index file"):
            with open(path, encoding="utf-8") as lines:
                stripped = [line.strip() for line in lines]
            for line_number, line in enumerate(stripped, start=1):
                if not line:
                    continue
                item = self.process_func(line) if self.process_func else line.split()
                if item is None:
                    continue
                try:
                    size = len(item)
                except TypeError:
                    raise DataSourceError(
                        f"{path}, line {line_number}: func returned "
                        f"{type(item).__name__}, expected a sequence such as (x, y)"
                    ) from None
                if size == 0:
                    continue
                if use_raw:
                    x_data.append(item)
                    continue
                x_data.append(item[0])
                if not self.is_test_data:
                    y_data.append(item[1] if size > 1 else 0)
        self.x = _array(x_data)
        self.y = _array(y_data)
        return self


class CSVDataParse(BaseDataSource):
    """A ``csv`` file of structured data, read with pandas (see the module docstring)."""

    def __init__(
        self, data_type: str = "train", func: Callable[[pd.DataFrame], Any] | None = None
    ) -> None:
        super().__init__(data_type=data_type, func=func)

    @staticmethod
    def parse_json(lines: dict[str, Any] | list[dict[str, Any]], **kwargs: Any) -> pd.DataFrame:
        """One row (a dict) or rows (a list of dicts) as a DataFrame."""
        import pandas as pd

        rows = [lines] if isinstance(lines, dict) else list(lines)
        return pd.DataFrame.from_records(rows, **kwargs)

    def parse(self, *args: Any, label: str | None = None, **kwargs: Any) -> CSVDataParse:
        """Read CSV files (or dict rows) into ``x`` (DataFrame) and ``y`` (Series); ``kwargs``
        go to ``pandas.read_csv`` (``usecols`` may be a comma-separated string). Returns
        ``self``."""
        import pandas as pd

        usecols = kwargs.get("usecols")
        if isinstance(usecols, str):
            usecols = [name.strip() for name in usecols.split(",") if name.strip()]
        if usecols:
            usecols = list(usecols)
            if label and label not in usecols:
                usecols.append(label)
            kwargs["usecols"] = usecols
        frames: list[pd.DataFrame] = []
        for source in args:
            if isinstance(source, dict | list):
                frame = self.parse_json(source)
                if usecols:
                    frame = frame[[name for name in usecols if name in frame.columns]]
                frames.append(frame)
            else:
                for path in _index_files([source], "CSV file"):
                    try:
                        frames.append(pd.read_csv(path, **kwargs))
                    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as error:
                        raise DataSourceError(f"{path}: cannot read CSV: {error}") from None
        x_data: list[pd.DataFrame] = []
        y_data: list[pd.Series] = []
        for frame in frames:
            if self.process_func is not None:
                frame = self.process_func(frame)
            if label:
                if label not in frame.columns:
                    if self.is_test_data:
                        x_data.append(frame)
                        continue
                    raise DataSourceError(
                        f"label column {label!r} not in the columns: "
                        f"{', '.join(map(str, frame.columns))}"
                    )
                y_data.append(frame[label])
                frame = frame.drop(columns=[label])
            x_data.append(frame)
        if not x_data:
            return self
        self.x = pd.concat(x_data)
        self.y = pd.concat(y_data) if y_data else None
        return self
