"""Structured logging for workers.

Records carry the worker's identity (``job``, ``kind``, ``namespace``, ``node``, ``worker``)
taken from the environment when the record is formatted, so tests and long-lived processes see
current values. Output is one JSON object per line when the stream is not a terminal (what log
collectors such as promtail expect), and a readable line otherwise.

Environment: ``JOB_NAME`` (else ``SERVICE_NAME``), ``JOB_KIND``, ``NAMESPACE``, ``NODE_NAME``,
``WORKER_NAME``; ``LOG_LEVEL`` (default ``INFO``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import IO, Any

from sedna.common.errors import ConfigError

LOGGER = logging.getLogger("sedna")
"""The library's root logger (Sedna scripts use ``from sedna.common.log import LOGGER``)."""

_CONTEXT_ENV: dict[str, tuple[str, ...]] = {
    "job": ("JOB_NAME", "SERVICE_NAME"),
    "kind": ("JOB_KIND",),
    "namespace": ("NAMESPACE",),
    "node": ("NODE_NAME",),
    "worker": ("WORKER_NAME",),
}

# Attributes every LogRecord has; anything else was passed through ``extra=``.
_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


def get_logger(name: str) -> logging.Logger:
    """A logger below ``sedna`` (``get_logger("joint_inference")`` -> ``sedna.joint_inference``)."""
    if name == "sedna" or name.startswith("sedna."):
        return logging.getLogger(name)
    return LOGGER.getChild(name)


def worker_context() -> dict[str, str]:
    """The identity fields of this worker, read from the environment now."""
    context: dict[str, str] = {}
    for field, variables in _CONTEXT_ENV.items():
        for variable in variables:
            value = os.environ.get(variable)
            if value:
                context[field] = value
                break
    return context


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _STANDARD_ATTRIBUTES and not key.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, worker context and extras."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as a single JSON line."""
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(worker_context())
        entry.update(_extra_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """A readable line: time, level, logger, message, then ``key=value`` context and extras."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` for a terminal."""
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        fields = {**worker_context(), **_extra_fields(record)}
        tail = " ".join(f"{key}={value}" for key, value in fields.items())
        line = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        if tail:
            line = f"{line} [{tail}]"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def setup_logging(
    level: str | int | None = None,
    stream: IO[str] | None = None,
    json_format: bool | None = None,
) -> None:
    """Attach one handler to the ``sedna`` logger (idempotent; later calls reconfigure it).

    ``json_format`` defaults to "the stream is not a terminal"; ``level`` to ``LOG_LEVEL``.
    """
    stream = stream if stream is not None else sys.stderr
    if json_format is None:
        json_format = not (hasattr(stream, "isatty") and stream.isatty())
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if json_format else TextFormatter())
    handler.set_name("sedna")
    for existing in list(LOGGER.handlers):
        if existing.get_name() == "sedna":
            LOGGER.removeHandler(existing)
    if level is None:
        level = os.environ.get("LOG_LEVEL", "INFO").upper()
    try:
        LOGGER.setLevel(level)
    except ValueError:
        raise ConfigError(
            f"unknown log level {level!r} (LOG_LEVEL); use DEBUG, INFO, WARNING or ERROR"
        ) from None
    LOGGER.addHandler(handler)
    LOGGER.propagate = False


def ensure_logging() -> None:
    """Set up logging with defaults unless the application already configured ``sedna``."""
    if not LOGGER.handlers and not logging.getLogger().handlers:
        setup_logging()
