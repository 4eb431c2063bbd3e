"""Build a hard example mining algorithm from its name and string parameters."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from sedna.algorithms.hard_example_mining.base import BaseFilter
from sedna.common.class_factory import ClassFactory, ClassType
from sedna.common.config import parse_algorithm_parameters
from sedna.common.errors import ConfigError


def parse_hem_parameters(raw: str | None) -> dict[str, Any]:
    """Parse ``HEM_PARAMETERS`` (JSON ``[{"key": "k", "value": "v"}, ...]``) into a dict."""
    return parse_algorithm_parameters(raw, "HEM_PARAMETERS")


def build_hem(name: str, parameters: Mapping[str, Any] | None = None) -> BaseFilter:
    """The algorithm registered as ``name`` built with ``parameters`` (validated now)."""
    cls = ClassFactory.get_cls(ClassType.HEM, name)
    return cls(**dict(parameters or {}))


def hem_config_from_env(**defaults: Any) -> dict[str, Any]:
    """Sedna's ``{"method": HEM_NAME, "param": {...}}``; ``HEM_PARAMETERS`` override defaults.

    ``method`` is ``None`` when ``HEM_NAME`` is unset.
    """
    params = {**defaults, **parse_hem_parameters(os.environ.get("HEM_PARAMETERS"))}
    return {"method": os.environ.get("HEM_NAME") or None, "param": params}


def hem_from_env(default_name: str | None = None, **defaults: Any) -> BaseFilter | None:
    """Build the algorithm named by ``HEM_NAME`` (else ``default_name``) with ``HEM_PARAMETERS``
    over ``defaults``; ``None`` when neither names one."""
    config = hem_config_from_env(**defaults)
    name = config["method"] or default_name
    return build_hem(name, config["param"]) if name else None


def resolve_hem(spec: Any) -> BaseFilter | None:
    """An algorithm from what a script passes as ``hard_example_mining``.

    Accepts a :class:`BaseFilter`, a registered name, Sedna's ``{"method", "param"}`` dict, or
    ``None`` (then ``HEM_NAME``/``HEM_PARAMETERS`` decide; ``None`` when unset).
    """
    if spec is None:
        return hem_from_env()
    if isinstance(spec, BaseFilter):
        return spec
    if isinstance(spec, str):
        return build_hem(spec)
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"method", "param"}
        if unknown:
            raise ConfigError(
                f"hard_example_mining dict takes 'method' and 'param', got {sorted(unknown)}"
            )
        method = spec.get("method")
        if not method:
            return None
        param = spec.get("param") or {}
        if not isinstance(param, Mapping):
            raise ConfigError(f"hard_example_mining 'param' must be a mapping, got {param!r}")
        return build_hem(str(method), param)
    raise ConfigError(
        "hard_example_mining must be an algorithm, its name or a {'method', 'param'} dict, "
        f"got {type(spec).__name__}"
    )
