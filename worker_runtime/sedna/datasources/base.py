"""The data source every feature passes to an estimator's ``train``/``evaluate``."""

from __future__ import annotations

from typing import Any

from sedna.common.class_factory import ClassFactory, ClassType


class BaseDataSource:
    """Samples ``x`` and, when labelled, labels ``y`` of one purpose (``train``, ``test``, ...).

    ``x`` and ``y`` are whatever the user or a parser put there (lists, numpy arrays, pandas
    frames). ``func`` is a callable, or the name of a ``ClassType.CALLBACK`` class that is
    instantiated (upstream's rule); parsers apply it to what they read.
    """

    def __init__(self, data_type: str = "train", func: Any = None) -> None:
        self.data_type = data_type
        self.process_func: Any = None
        if callable(func):
            self.process_func = func
        elif func:
            self.process_func = ClassFactory.get_cls(ClassType.CALLBACK, func)()
        self.x: Any = None
        self.y: Any = None
        self.meta_attr: Any = None  # used by lifelong learning

    def num_examples(self) -> int:
        """How many samples ``x`` holds (0 when unset)."""
        return 0 if self.x is None else len(self.x)

    @property
    def is_test_data(self) -> bool:
        """Whether this source holds test data (test sources carry no labels)."""
        return self.data_type == "test"

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        """Fill ``x``/``y`` from files; parsers implement it."""
        raise NotImplementedError(f"{type(self).__name__} does not parse files")

    def save(self, output: str = "") -> str:
        """Write this data source with joblib to ``output``; returns the path."""
        from sedna.common.file_ops import FileOps

        return FileOps.dump(self, output or None)

    def __len__(self) -> int:
        return self.num_examples()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(data_type={self.data_type!r}, samples={len(self)})"
