"""Resolving ``{"method": <registered name>, "param": dict | JSON string}`` configurations."""

from __future__ import annotations

import ast
import json
from typing import Any

from sedna.common.class_factory import ClassFactory, ClassType
from sedna.common.errors import ConfigError


def parse_param(param: Any, what: str) -> dict[str, Any]:
    """Parameters as a dict: a dict, a JSON object, or a Python literal (``"{'a': 1}"``)."""
    if param is None or param == "":
        return {}
    if isinstance(param, dict):
        return dict(param)
    if isinstance(param, str):
        for parse in (json.loads, ast.literal_eval):
            try:
                value = parse(param)
            except (ValueError, SyntaxError):
                continue
            if isinstance(value, dict):
                return value
        raise ConfigError(f"{what}: param must be a JSON object, got {param!r}")
    raise ConfigError(f"{what}: param must be a dict or a JSON object, got {type(param).__name__}")


def build(
    type_name: ClassType, config: dict[str, Any] | None, default: str, what: str, **extra: Any
) -> Any:
    """Instantiate the algorithm ``config`` names (``default`` when ``config`` is None)."""
    config = config or {"method": default}
    if not isinstance(config, dict) or not config.get("method"):
        raise ConfigError(f"{what}: expected {{'method': name, 'param': {{...}}}}, got {config!r}")
    params = parse_param(config.get("param"), what)
    return ClassFactory.create(type_name, str(config["method"]), **{**extra, **params})
