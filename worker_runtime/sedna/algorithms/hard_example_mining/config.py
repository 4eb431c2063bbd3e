"""Build a hard example mining algorithm from its name and string parameters."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from sedna.algorithms.hard_example_mining.base import BaseFilter
from sedna.common.class_factory import ClassFactory, ClassType
from sedna.common.errors import ConfigError


class HEMParameter(BaseModel):
    """One ``{"key": ..., "value": ...}`` entry of ``HEM_PARAMETERS``."""

    model_config = ConfigDict(extra="forbid")

    key: str
    value: str | int | float | bool | None


def parse_hem_parameters(raw: str | None) -> dict[str, Any]:
    """Parse ``HEM_PARAMETERS`` (JSON ``[{"key": "k", "value": "v"}, ...]``) into a dict."""
    if raw is None or not raw.strip():
        return {}
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ConfigError(f"HEM_PARAMETERS is not valid JSON ({error.msg}): {raw!r}") from None
    if not isinstance(document, list):
        raise ConfigError(
            f'HEM_PARAMETERS must be a JSON list of {{"key", "value"}} objects, got {raw!r}'
        )
    parameters: dict[str, Any] = {}
    for position, entry in enumerate(document):
        try:
            item = HEMParameter.model_validate(entry)
        except ValidationError as error:
            problem = error.errors()[0]
            field = ".".join(str(part) for part in problem["loc"]) or "entry"
            raise ConfigError(
                f"HEM_PARAMETERS[{position}]: {field}: {problem['msg']} (got {entry!r})"
            ) from None
        if item.key in parameters:
            raise ConfigError(f"HEM_PARAMETERS: parameter {item.key!r} given twice")
        parameters[item.key] = item.value
    return parameters


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
