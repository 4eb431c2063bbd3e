"""The data source every feature passes to an estimator's ``train``/``evaluate``."""

from __future__ import annotations

from typing import Any


class BaseDataSource:
    """Samples ``x`` and, when labelled, labels ``y`` of one purpose (``train``, ``test``, ...).

    ``x`` and ``y`` are whatever the user or a parser put there (lists, numpy arrays).
    """

    def __init__(self, data_type: str = "train", func: Any = None) -> None:
        self.data_type = data_type
        self.process_func = func if callable(func) else None
        self.x: Any = None
        self.y: Any = None

    def num_examples(self) -> int:
        """How many samples ``x`` holds (0 when unset)."""
        return 0 if self.x is None else len(self.x)

    def is_test_data(self) -> bool:
        """Whether this source holds evaluation data."""
        return self.data_type in ("test", "eval")

    def __len__(self) -> int:
        return self.num_examples()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(data_type={self.data_type!r}, samples={len(self)})"
