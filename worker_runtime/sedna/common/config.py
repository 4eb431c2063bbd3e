"""Worker configuration from the environment the GM/LC started the worker with.

Nothing is read at import time: every attribute is looked up when asked for, so tests (and
long-lived processes whose environment changes) see the current values.
"""

from __future__ import annotations

import os
from typing import Any

# Attribute name on BaseConfig -> environment variable (Sedna's names).
_ENV_NAMES: dict[str, str] = {
    "namespace": "NAMESPACE",
    "worker_name": "WORKER_NAME",
    "job_name": "JOB_NAME",
    "service_name": "SERVICE_NAME",
    "lc_server": "LC_SERVER",
    "model_url": "MODEL_URL",
    "base_model_url": "BASE_MODEL_URL",
    "model_urls": "MODEL_URLS",
    "train_dataset_url": "TRAIN_DATASET_URL",
    "test_dataset_url": "TEST_DATASET_URL",
    "original_dataset_url": "ORIGINAL_DATASET_URL",
    "big_model_ip": "BIG_MODEL_IP",
    "big_model_port": "BIG_MODEL_PORT",
    "big_model_bind_port": "BIG_MODEL_BIND_PORT",
    "hem_name": "HEM_NAME",
    "hem_parameters": "HEM_PARAMETERS",
    "agg_ip": "AGG_IP",
    "agg_port": "AGG_PORT",
    "agg_bind_port": "AGG_BIND_PORT",
    "participants_count": "PARTICIPANTS_COUNT",
    "job_token": "SEDNA_JOB_TOKEN",
    "model_hot_update": "MODEL_HOT_UPDATE",
    "model_poll_period_seconds": "MODEL_POLL_PERIOD_SECONDS",
    "model_hot_update_config": "MODEL_HOT_UPDATE_CONFIG",
    "kb_server": "KB_SERVER",
    "has_completed_initial_training": "HAS_COMPLETED_INITIAL_TRAINING",
    "cloud_kb_index": "CLOUD_KB_INDEX",
    "output_url": "OUTPUT_URL",
    "data_path_prefix": "DATA_PATH_PREFIX",
}


class _EnvAttributes(type):
    """Metaclass that resolves BaseConfig.<attribute> from the environment on each access."""

    def __getattr__(cls, attribute: str) -> str | None:
        try:
            variable = _ENV_NAMES[attribute]
        except KeyError:
            raise AttributeError(f"BaseConfig has no setting {attribute!r}") from None
        return os.environ.get(variable)


class BaseConfig(metaclass=_EnvAttributes):
    """Sedna's well-known worker settings, e.g. ``BaseConfig.model_url`` (``MODEL_URL``).

    Each attribute is read from the environment when accessed; unset ones are ``None``.
    ``job_name`` falls back to ``SERVICE_NAME`` (services) so reports always name the resource.
    """

    @classmethod
    def resource_name(cls) -> str | None:
        """The owning resource's name: ``JOB_NAME``, else ``SERVICE_NAME``."""
        return os.environ.get("JOB_NAME") or os.environ.get("SERVICE_NAME")

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Attribute name to environment variable, for documentation and tests."""
        return dict(_ENV_NAMES)


class Context:
    """Job parameters given to the worker (resource ``parameters`` / template ``env``)."""

    @staticmethod
    def get_parameters(name: str, default: Any = None) -> Any:
        """Look up ``name`` in the environment, then ``NAME``; ``default`` when neither is set."""
        for candidate in (name, name.upper()):
            value = os.environ.get(candidate)
            if value is not None:
                return value
        return default
