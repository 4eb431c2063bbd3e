"""A registry of algorithm classes by type and name, resolved from resource specs.

Usage::

    @ClassFactory.register(ClassType.HEM, alias="IBT")
    class IBTFilter(BaseFilter): ...

    cls = ClassFactory.get_cls(ClassType.HEM, "IBT")
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

from sedna.common.errors import UnknownAlgorithmError

_T = TypeVar("_T")


class ClassType(StrEnum):
    """Kinds of pluggable algorithms (Sedna's names)."""

    GENERAL = "general"
    HEM = "hard_example_mining"
    FL_AGG = "aggregation"
    COMPRESSION = "compression"
    CALLBACK = "callback"


class ClassFactory:
    """Process-wide registry mapping ``(ClassType, name)`` to a class."""

    _registry: dict[ClassType, dict[str, type]] = {}
    _lock = threading.Lock()

    @classmethod
    def register(
        cls, type_name: ClassType = ClassType.GENERAL, alias: str | None = None
    ) -> Callable[[type[_T]], type[_T]]:
        """Class decorator registering the class under ``alias`` (default: its ``__name__``)."""

        def decorator(target: type[_T]) -> type[_T]:
            cls.register_cls(target, type_name, alias)
            return target

        return decorator

    @classmethod
    def register_cls(
        cls, target: type, type_name: ClassType = ClassType.GENERAL, alias: str | None = None
    ) -> type:
        """Register ``target`` under ``alias`` (default: its ``__name__``); returns ``target``.

        Registering the same class twice is harmless; another class under a taken name is a
        :class:`ValueError`.
        """
        if not isinstance(target, type):
            raise TypeError(f"only classes can be registered, got {target!r}")
        name = alias or target.__name__
        with cls._lock:
            names = cls._registry.setdefault(ClassType(type_name), {})
            existing = names.get(name)
            if existing is not None and not _same_class(existing, target):
                raise ValueError(
                    f"{type_name.value} algorithm {name!r} is already registered "
                    f"as {existing.__module__}.{existing.__qualname__}"
                )
            names[name] = target
        return target

    @classmethod
    def get_cls(cls, type_name: ClassType, name: str) -> type:
        """The class registered under ``name``; :class:`UnknownAlgorithmError` lists known ones."""
        names = cls._registry.get(ClassType(type_name), {})
        try:
            return names[name]
        except KeyError:
            known = ", ".join(sorted(names)) or "none"
            raise UnknownAlgorithmError(
                f"unknown {ClassType(type_name).value} algorithm {name!r}; known: {known}"
            ) from None

    @classmethod
    def is_exists(cls, type_name: ClassType, name: str) -> bool:
        """Whether a class is registered under ``name``."""
        return name in cls._registry.get(ClassType(type_name), {})

    @classmethod
    def names(cls, type_name: ClassType) -> list[str]:
        """Registered names of one type, sorted."""
        return sorted(cls._registry.get(ClassType(type_name), {}))

    @classmethod
    def create(cls, type_name: ClassType, name: str, **params: Any) -> Any:
        """Instantiate the class registered under ``name`` with ``params``."""
        return cls.get_cls(type_name, name)(**params)


def _same_class(a: type, b: type) -> bool:
    # A module imported twice (e.g. run as a script and imported) yields two equal classes.
    return a is b or (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)
