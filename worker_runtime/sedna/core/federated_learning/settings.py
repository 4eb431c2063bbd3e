"""Settings of the aggregation and training workers, read once from the worker environment.

Environment (set by the GM/LC): ``JOB_NAME``, ``WORKER_NAME``, ``NODE_NAME``, ``AGG_IP``,
``AGG_PORT``, ``AGG_BIND_IP``, ``AGG_BIND_PORT``, ``PARTICIPANTS_COUNT``, ``SEDNA_JOB_TOKEN``,
``MODEL_URL``, ``OUTPUT_URL``; for TLS on the weight exchange ``AGG_TLS_CERT`` and
``AGG_TLS_KEY`` (aggregator) and ``AGG_TLS_CA`` (trainers). Job parameters
(``Context.get_parameters``): see each field's description.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from sedna.common.config import BaseConfig, Context
from sedna.common.errors import ConfigError
from sedna.core.federated_learning.wire import DEFAULT_CHUNK_BYTES, MAX_MESSAGE_BYTES

DEFAULT_JOB = "federated-job"


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    job: str = Field(DEFAULT_JOB, min_length=1, description="JOB_NAME")
    token: SecretStr = Field(description="SEDNA_JOB_TOKEN")
    chunk_bytes: int = Field(DEFAULT_CHUNK_BYTES, ge=1024, le=MAX_MESSAGE_BYTES // 2)


class AggregatorSettings(_Settings):
    """How the aggregation worker runs one federated job."""

    bind_host: str = Field(
        "0.0.0.0", description="AGG_BIND_IP (the address the GM gives), or parameter agg_bind_host"
    )
    tls_cert: Path | None = Field(None, description="AGG_TLS_CERT: serving certificate (PEM)")
    tls_key: Path | None = Field(None, description="AGG_TLS_KEY: its private key (PEM)")
    bind_port: int = Field(ge=0, le=65535, description="AGG_BIND_PORT (0: any free port)")
    participants: int = Field(ge=1, description="PARTICIPANTS_COUNT")
    exit_round: int = Field(10, ge=1, description="parameter exit_round: rounds to run")
    aggregation: str = Field("FedAvg", description="parameter aggregation")
    min_node_number: int = Field(1, ge=1, description="parameter min_node_number")
    round_timeout_seconds: float = Field(300.0, gt=0, description="parameter round_timeout_seconds")
    round_max_wait_seconds: float | None = Field(
        None, gt=0, description="parameter round_max_wait_seconds (default 4 x the timeout)"
    )
    round_wait_after_min_seconds: float | None = Field(
        None,
        ge=0,
        description="parameter round_wait_after_min_seconds: once min_node_number updates "
        "are in, wait this long for the rest (default: until the round timeout)",
    )
    exit_grace_seconds: float = Field(
        30.0, ge=0, description="parameter exit_grace_seconds: serve the final model this long"
    )
    checkpoint_dir: Path | None = Field(None, description="parameter checkpoint_dir")
    keep_models: int = Field(
        0, ge=0, description="parameter keep_models: rounds' models kept (0: all)"
    )
    model_path: Path | None = Field(
        None,
        description="MODEL_URL: the model file the training workers save (checkpoints "
        "go next to it)",
    )
    initial_model_path: Path | None = Field(
        None, description="BASE_MODEL_URL: the pretrained model (npz) round 1 starts from"
    )
    max_update_mb: float = Field(65536.0, gt=0, description="parameter max_update_mb")

    @model_validator(mode="after")
    def _consistent(self) -> AggregatorSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("AGG_TLS_CERT and AGG_TLS_KEY go together: set both or neither")
        if self.min_node_number > self.participants:
            raise ValueError(
                f"min_node_number ({self.min_node_number}) exceeds participants_count "
                f"({self.participants})"
            )
        return self

    @property
    def max_wait_seconds(self) -> float:
        """How long a round may stay below ``min_node_number`` before the job fails."""
        if self.round_max_wait_seconds is not None:
            return max(self.round_max_wait_seconds, self.round_timeout_seconds)
        return 4 * self.round_timeout_seconds

    @classmethod
    def from_env(cls, **overrides: Any) -> AggregatorSettings:
        """Settings from the environment and job parameters; ``overrides`` win."""
        model_path, checkpoint_dir = _output_paths()
        pretrained = BaseConfig.base_model_url
        values: dict[str, Any] = {
            "job": BaseConfig.resource_name() or DEFAULT_JOB,
            "token": BaseConfig.job_token,
            "bind_host": os.environ.get("AGG_BIND_IP") or Context.get_parameters("agg_bind_host"),
            "tls_cert": os.environ.get("AGG_TLS_CERT"),
            "tls_key": os.environ.get("AGG_TLS_KEY"),
            "bind_port": BaseConfig.agg_bind_port or BaseConfig.agg_port,
            "participants": BaseConfig.participants_count,
            "exit_round": Context.get_parameters("exit_round"),
            "aggregation": Context.get_parameters("aggregation"),
            "min_node_number": Context.get_parameters("min_node_number"),
            "round_timeout_seconds": Context.get_parameters("round_timeout_seconds"),
            "round_max_wait_seconds": Context.get_parameters("round_max_wait_seconds"),
            "round_wait_after_min_seconds": Context.get_parameters("round_wait_after_min_seconds"),
            "exit_grace_seconds": Context.get_parameters("exit_grace_seconds"),
            "checkpoint_dir": Context.get_parameters("checkpoint_dir") or checkpoint_dir,
            "keep_models": Context.get_parameters("keep_models"),
            "model_path": model_path,
            "initial_model_path": _npz_file(pretrained) if pretrained else None,
            "max_update_mb": Context.get_parameters("max_update_mb"),
            "chunk_bytes": Context.get_parameters("chunk_bytes"),
        }
        return _build(cls, values, overrides)


class TrainerSettings(_Settings):
    """How a training worker reaches the aggregator and encodes its updates."""

    worker: str = Field(min_length=1, description="WORKER_NAME")
    node: str = Field("", description="NODE_NAME")
    agg_ip: str = Field("127.0.0.1", description="AGG_IP")
    agg_port: int = Field(ge=1, le=65535, description="AGG_PORT")
    tls_ca: Path | None = Field(
        None, description="AGG_TLS_CA: CA certificate (PEM) of the aggregator; TLS when set"
    )
    compression: str = Field("none", description="parameter compression")
    topk_ratio: float = Field(0.1, gt=0, le=1, description="parameter topk_ratio")
    retry_seconds: float = Field(
        300.0,
        gt=0,
        description="parameter agg_retry_seconds: how long to retry an unreachable aggregator",
    )
    round_wait_seconds: float = Field(
        3600.0, gt=0, description="parameter round_wait_seconds: longest wait for a global model"
    )

    @property
    def address(self) -> str:
        """``host:port`` of the aggregator."""
        host = self.agg_ip
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{host}:{self.agg_port}"

    @classmethod
    def from_env(cls, **overrides: Any) -> TrainerSettings:
        """Settings from the environment and job parameters; ``overrides`` win."""
        values: dict[str, Any] = {
            "job": BaseConfig.resource_name() or DEFAULT_JOB,
            "token": BaseConfig.job_token,
            "worker": BaseConfig.worker_name or f"{socket.gethostname()}-{os.getpid()}",
            "node": os.environ.get("NODE_NAME"),
            "agg_ip": BaseConfig.agg_ip,
            "agg_port": BaseConfig.agg_port,
            "tls_ca": os.environ.get("AGG_TLS_CA"),
            "compression": Context.get_parameters("compression"),
            "topk_ratio": Context.get_parameters("topk_ratio"),
            "retry_seconds": Context.get_parameters("agg_retry_seconds"),
            "round_wait_seconds": Context.get_parameters("round_wait_seconds"),
            "chunk_bytes": Context.get_parameters("chunk_bytes"),
        }
        return _build(cls, values, overrides)


def _npz_file(url: str) -> Path:
    """A model URL as its npz file: the URL itself, or ``global_model.npz`` in that directory."""
    target = Path(url)
    return target if target.suffix == ".npz" else target / "global_model.npz"


def _output_paths() -> tuple[Path | None, Path | None]:
    """Final model file and default checkpoint directory from ``MODEL_URL`` / ``OUTPUT_URL``."""
    model_url = BaseConfig.model_url
    if model_url:
        # A URL with a suffix names the model file itself (whatever the user's format).
        target = Path(model_url)
        model_file = target if target.suffix else target / "global_model.npz"
        return model_file, model_file.parent / "checkpoints"
    output_url = BaseConfig.output_url
    if output_url:
        return Path(output_url) / "global_model.npz", Path(output_url) / "checkpoints"
    return None, None


_S = TypeVar("_S", bound=_Settings)


def _build(cls: type[_S], values: dict[str, Any], overrides: dict[str, Any]) -> _S:
    merged = {key: value for key, value in values.items() if value not in (None, "")}
    merged.update(overrides)
    try:
        return cls.model_validate(merged)
    except ValidationError as error:
        problems = "; ".join(
            f"{_source(cls, issue['loc'])}: {issue['msg']}" for issue in error.errors()
        )
        raise ConfigError(f"federated learning settings: {problems}") from None


def _source(cls: type[_Settings], location: tuple[Any, ...]) -> str:
    name = str(location[0]) if location else "settings"
    info = cls.model_fields.get(name)
    if info is not None and info.description:
        return f"{name} ({info.description.split(':')[0]})"
    return name
