"""A registry of algorithm classes by type and name, resolved from resource specs.

Usage::

    @ClassFactory.register(ClassType.HEM, alias="IBT")
    class IBTFilter(BaseFilter): ...

    cls = ClassFactory.get_cls(ClassType.HEM, "IBT")
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable
from enum import StrEnum
from inspect import isclass, isfunction
from typing import Any, TypeVar

from sedna.common.errors import UnknownAlgorithmError, UnsupportedError

_T = TypeVar("_T")


class ClassType(StrEnum):
    """Kinds of pluggable algorithms (upstream Sedna's names and values, plus ``COMPRESSION``)."""

    GENERAL = "general"
    HEM = "hard_example_mining"
    FL_AGG = "aggregation"
    MTL = "multi_task_learening"  # sic, upstream's value
    UTD = "unseen_task_detect"
    OF = "optical_flow"
    ALGORITHM = "algorithm"
    DATASET = "data_process"
    CALLBACK = "post_process_callback"
    UTP = "unseen_task_processing"
    KM = "knowledge_management"
    STP = "seen_task_processing"
    COMPRESSION = "compression"


class ClassFactory:
    """Process-wide registry mapping ``(ClassType, name)`` to a class."""

    _registry: dict[ClassType, dict[str, type]] = {}
    # Upstream names this library knows but does not provide: (type, name) -> why.
    _unsupported: dict[tuple[ClassType, str], str] = {}
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
        if not (isclass(target) or isfunction(target)):
            raise TypeError(f"only classes and functions can be registered, got {target!r}")
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
    def register_from_package(cls, package: Any, type_name: ClassType = ClassType.GENERAL) -> None:
        """Register every public class and function of ``package`` (a module) by its name."""
        for name in dir(package):
            if name.startswith("_"):
                continue
            member = getattr(package, name)
            if isclass(member) or isfunction(member):
                cls.register_cls(member, type_name)

    @classmethod
    def mark_unsupported(cls, type_name: ClassType, name: str, reason: str) -> None:
        """Record an upstream algorithm name this library refuses, and why."""
        with cls._lock:
            cls._unsupported[(ClassType(type_name), name)] = reason

    @classmethod
    def get_cls(cls, type_name: ClassType, name: str | None = None) -> type:
        """The class registered under ``name``.

        An upstream name that is not provided raises :class:`UnsupportedError` saying why; any
        other unknown name :class:`UnknownAlgorithmError` listing the known ones (both are
        ``ValueError`` s, as upstream raised).
        """
        kind = ClassType(type_name)
        names = cls._registry.get(kind, {})
        if name is not None and name in names:
            return names[name]
        if "sedna.algorithms" not in sys.modules:
            # Upstream's ``import sedna`` registered every algorithm; here that happens on the
            # first lookup of a name not registered yet.
            importlib.import_module("sedna.algorithms")
            return cls.get_cls(kind, name)
        reason = cls._unsupported.get((kind, str(name)))
        if reason is not None:
            raise UnsupportedError(f"{kind.value} algorithm {name!r} is not supported: {reason}")
        known = ", ".join(sorted(names)) or "none"
        raise UnknownAlgorithmError(
            f"unknown {kind.value} algorithm {name!r}; known: {known}"
        ) from None

    @classmethod
    def is_exists(cls, type_name: ClassType, name: str | None = None) -> bool:
        """Whether a class is registered under ``name`` (any, when ``name`` is ``None``)."""
        names = cls._registry.get(ClassType(type_name), {})
        return bool(names) if name is None else name in names

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
