"""Worker configuration from the environment the GM/LC started the worker with.

Nothing is read at import time: every attribute is looked up when asked for, so tests (and
long-lived processes whose environment changes) see the current values. Upstream Sedna's
forms all work: ``BaseConfig.model_url`` (class attribute), ``BaseConfig().get("model_url")``
(instance), ``Context.get_parameters("epochs", 1)`` and ``Context.get_algorithm_from_api("HEM")``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from sedna.common.errors import ConfigError

# Attribute name on BaseConfig -> (environment variables, first set wins; default when unset).
# The names are Sedna's; defaults differ from upstream only where docs/compatibility.md says.
_SETTINGS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "namespace": (("NAMESPACE",), ""),
    "worker_name": (("WORKER_NAME",), ""),
    "job_name": (("JOB_NAME", "SERVICE_NAME"), None),
    "service_name": (("SERVICE_NAME",), ""),
    "lc_server": (("LC_SERVER",), None),
    "model_url": (("MODEL_URL",), None),
    "model_name": (("MODEL_NAME",), None),
    "base_model_url": (("BASE_MODEL_URL",), None),
    "pretrained_model_url": (("PRETRAINED_MODEL_URL", "BASE_MODEL_URL"), "./"),
    "model_urls": (("MODEL_URLS",), None),
    "train_dataset_url": (("TRAIN_DATASET_URL",), None),
    "test_dataset_url": (("TEST_DATASET_URL",), None),
    "original_dataset_url": (("ORIGINAL_DATASET_URL",), None),
    "data_path_prefix": (("DATA_PATH_PREFIX",), "/home/data"),
    "big_model_ip": (("BIG_MODEL_IP",), None),
    "big_model_port": (("BIG_MODEL_PORT",), None),
    "big_model_bind_port": (("BIG_MODEL_BIND_PORT",), None),
    "hem_name": (("HEM_NAME",), None),
    "hem_parameters": (("HEM_PARAMETERS",), None),
    "agg_ip": (("AGG_IP",), None),
    "agg_port": (("AGG_PORT",), None),
    "agg_bind_port": (("AGG_BIND_PORT",), None),
    "participants_count": (("PARTICIPANTS_COUNT",), None),
    "transmitter": (("TRANSMITTER",), "grpc"),
    "agg_data_path": (("AGG_DATA_PATH",), "./"),
    "s3_endpoint_url": (("S3_ENDPOINT_URL",), None),
    "access_key_id": (("ACCESS_KEY_ID",), None),
    "secret_access_key": (("SECRET_ACCESS_KEY",), None),
    "job_token": (("SEDNA_JOB_TOKEN",), None),
    "model_hot_update": (("MODEL_HOT_UPDATE",), None),
    "model_poll_period_seconds": (("MODEL_POLL_PERIOD_SECONDS",), None),
    "model_hot_update_config": (("MODEL_HOT_UPDATE_CONFIG",), None),
    "kb_server": (("KB_SERVER",), None),
    "has_completed_initial_training": (("HAS_COMPLETED_INITIAL_TRAINING",), None),
    "cloud_kb_index": (("CLOUD_KB_INDEX",), None),
    "output_url": (("OUTPUT_URL",), None),
    "device_category": (("DEVICE_CATEGORY",), "CPU"),
    "backend_type": (("BACKEND_TYPE",), None),
    "log_level": (("LOG_LEVEL",), "INFO"),
    "parameters": (("PARAMETERS",), None),
}


def _setting(attribute: str) -> str | None:
    try:
        variables, default = _SETTINGS[attribute]
    except KeyError:
        raise AttributeError(f"BaseConfig has no setting {attribute!r}") from None
    for variable in variables:
        value = os.environ.get(variable)
        if value:
            return value
    return default


def parse_parameters_document(raw: str) -> dict[str, Any]:
    """``PARAMETERS``: a YAML/JSON file path or an inline JSON object, as a dict."""
    text = raw.strip()
    if text.endswith(".py"):
        raise ConfigError(
            f"PARAMETERS={raw!r}: Python parameter files are not supported; use YAML or JSON"
        )
    if text.endswith((".yaml", ".yml", ".json")):
        try:
            document = yaml.safe_load(Path(text).read_text(encoding="utf-8"))
        except OSError as error:
            raise ConfigError(f"PARAMETERS file {text!r}: {error.strerror or error}") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"PARAMETERS file {text!r} is not valid YAML/JSON: {error}") from None
    else:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(
                f"PARAMETERS must be a .yaml/.json file or a JSON object ({error.msg}): {raw!r}"
            ) from None
    if not isinstance(document, dict):
        raise ConfigError(f"PARAMETERS must hold a mapping, got {type(document).__name__}")
    return document


class _EnvAttributes(type):
    """Metaclass that resolves BaseConfig.<attribute> from the environment on each access."""

    def __getattr__(cls, attribute: str) -> Any:
        if attribute == "parameter":
            raw = _setting("parameters")
            return parse_parameters_document(raw) if raw else {}
        return _setting(attribute)


class BaseConfig(metaclass=_EnvAttributes):
    """Sedna's well-known worker settings, e.g. ``BaseConfig.model_url`` (``MODEL_URL``).

    Each attribute is read from the environment when accessed; unset ones are ``None`` unless
    ``_SETTINGS`` gives a default. ``job_name`` falls back to ``SERVICE_NAME`` (services) so
    reports always name the resource. ``parameter`` is the parsed ``PARAMETERS`` document.

    An instance (``BaseConfig()``, as upstream's ``JobBase`` makes) reads the same settings and
    takes per-instance overrides through :meth:`from_json`; it never changes the class.
    """

    def __init__(self) -> None:
        self._overrides: dict[str, Any] = {}

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("_"):
            raise AttributeError(attribute)
        overrides = self.__dict__.get("_overrides", {})
        if attribute in overrides:
            return overrides[attribute]
        return getattr(type(self), attribute)

    def __getitem__(self, item: str) -> Any:
        try:
            return getattr(self, item)
        except AttributeError:
            return None

    def get(self, item: str, default: Any = "") -> Any:
        """The setting ``item``, or ``default`` when it is unset or empty (upstream's rule)."""
        return self[item] or default

    def from_json(self, data: dict[str, Any] | None) -> BaseConfig:
        """Override settings on this instance (upstream changed the class); returns ``self``."""
        self._overrides.update(dict(data or {}))
        return self

    def update(self, **kwargs: Any) -> None:
        """Override settings on this instance."""
        self._overrides.update(kwargs)

    def to_json(self) -> dict[str, Any]:
        """Every setting and override as a dict."""
        values = {name: _setting(name) for name in _SETTINGS}
        values.update(self._overrides)
        return values

    @classmethod
    def resource_name(cls) -> str | None:
        """The owning resource's name: ``JOB_NAME``, else ``SERVICE_NAME``."""
        return _setting("job_name")

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Attribute name to (first) environment variable, for documentation and tests."""
        return {name: variables[0] for name, (variables, _) in _SETTINGS.items()}


class AlgorithmParameter(BaseModel):
    """One ``{"key": ..., "value": ...}`` entry of ``<ALGORITHM>_PARAMETERS``."""

    model_config = ConfigDict(extra="forbid")

    key: str
    value: str | int | float | bool | None


def parse_algorithm_parameters(raw: str | None, variable: str) -> dict[str, Any]:
    """Parse ``variable``'s value (JSON ``[{"key": "k", "value": "v"}, ...]``) into a dict."""
    if raw is None or not raw.strip():
        return {}
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{variable} is not valid JSON ({error.msg}): {raw!r}") from None
    if not isinstance(document, list):
        raise ConfigError(
            f'{variable} must be a JSON list of {{"key", "value"}} objects, got {raw!r}'
        )
    parameters: dict[str, Any] = {}
    for position, entry in enumerate(document):
        try:
            item = AlgorithmParameter.model_validate(entry)
        except ValidationError as error:
            problem = error.errors()[0]
            field = ".".join(str(part) for part in problem["loc"]) or "entry"
            raise ConfigError(
                f"{variable}[{position}]: {field}: {problem['msg']} (got {entry!r})"
            ) from None
        if item.key in parameters:
            raise ConfigError(f"{variable}: parameter {item.key!r} given twice")
        parameters[item.key] = item.value
    return parameters


class Context:
    """Job parameters given to the worker (resource ``parameters`` / template ``env``)."""

    @staticmethod
    def get_parameters(param: str, default: Any = None) -> Any:
        """``param`` from the environment, then ``PARAM``; ``default`` when neither is set to
        a non-empty value (upstream's rule)."""
        for candidate in (param, str(param).upper()):
            value = os.environ.get(candidate)
            if value:
                return value
        return default

    @staticmethod
    def get_algorithm_from_api(algorithm: str, **param: Any) -> dict[str, Any]:
        """``{"method": <ALGORITHM>_NAME, "param": {...}}`` from the resource spec, ``{}`` when
        no algorithm is named. ``param`` are defaults; ``<ALGORITHM>_PARAMETERS`` override them
        (the resource spec wins over the script)."""
        name = os.environ.get(f"{algorithm}_NAME")
        if not name:
            return {}
        variable = f"{algorithm}_PARAMETERS"
        parsed = parse_algorithm_parameters(os.environ.get(variable), variable)
        return {"method": name, "param": {**param, **parsed}}
