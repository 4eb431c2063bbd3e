"""The messages carried on the bus: pydantic models with camelCase JSON on the wire.

Every model encodes to compact UTF-8 JSON (readable with ``mosquitto_sub``) with `to_bytes` and
decodes with `from_bytes`, which raises `MalformedMessage` naming what is wrong.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from broker.topics import InvalidTopic, validate_kind, validate_name, validate_namespace
from broker.topics import validate_node as _validate_node

__all__ = [
    "Ack",
    "Envelope",
    "MalformedMessage",
    "Manifest",
    "ManifestItem",
    "NodeState",
    "WireModel",
    "new_message_id",
    "utcnow",
]

_HEX_ID = re.compile(r"^[0-9a-f]{32}$")


class MalformedMessage(ValueError):
    """A payload received from the bus is not the message its topic promises."""


def new_message_id() -> str:
    """A fresh message id: a uuid4 as 32 lower-case hex digits."""
    return uuid.uuid4().hex


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def _check_id(value: str) -> str:
    if not _HEX_ID.match(value):
        raise ValueError("must be 32 lower-case hex digits (a uuid4 hex)")
    return value


def _check(validator: Callable[[str], str], value: str) -> str:
    try:
        return validator(value)
    except InvalidTopic as err:
        raise ValueError(str(err)) from None


def _describe(err: ValidationError) -> str:
    parts = []
    for item in err.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(message)"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


class WireModel(BaseModel):
    """Base of every bus message: camelCase aliases, unknown fields kept out, JSON codec."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )

    def to_bytes(self) -> bytes:
        """Encode as compact camelCase JSON (RFC 3339 times)."""
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def from_bytes(cls, payload: bytes | bytearray | str) -> Self:
        """Decode a payload; raise `MalformedMessage` naming what is wrong."""
        try:  # the common case in one pass of pydantic's own JSON parser
            return cls.model_validate_json(payload)
        except ValidationError:
            pass  # say precisely what is wrong, below
        name = cls.__name__
        if isinstance(payload, bytes | bytearray):
            try:
                payload = bytes(payload).decode()
            except UnicodeDecodeError as err:
                raise MalformedMessage(f"{name}: payload is not UTF-8 ({err})") from None
        if not payload.strip():
            raise MalformedMessage(f"{name}: payload is empty")
        try:
            data = json.loads(payload)
        except json.JSONDecodeError as err:
            raise MalformedMessage(f"{name}: payload is not JSON ({err})") from None
        if not isinstance(data, dict):
            raise MalformedMessage(
                f"{name}: payload must be a JSON object, got {type(data).__name__}"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            raise MalformedMessage(f"{name}: {_describe(err)}") from None


class Envelope(WireModel):
    """An upstream message from an LC: unique id, per-node sequence number and the payload."""

    id: str = Field(default_factory=new_message_id, description="uuid4 hex, unique per message")
    seq: int = Field(ge=0, description="per-node, monotonically increasing")
    node: str
    sent_at: datetime = Field(default_factory=utcnow)
    payload: dict[str, Any]

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return _check_id(value)

    @field_validator("node")
    @classmethod
    def _node(cls, value: str) -> str:
        return _check(_validate_node, value)

    @field_validator("sent_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must carry a timezone (RFC 3339)")
        return value


class NodeState(WireModel):
    """An LC's presence on ``sedna/node/<node>/state`` (its last will says ``offline``)."""

    state: Literal["online", "offline"]
    time: datetime = Field(default_factory=utcnow)
    version: str = ""
    log_port: int | None = None  # where the LC serves its workers' logs (``lc.logserver``)


class ManifestItem(WireModel):
    """One object a node should hold."""

    kind: str
    namespace: str
    name: str
    resource_version: str

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        return _check(validate_kind, value)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return _check(validate_namespace, value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check(validate_name, value)


class Manifest(WireModel):
    """Everything a node should hold; the LC deletes what it runs and is not listed."""

    items: list[ManifestItem] = Field(default_factory=list)


class Ack(WireModel):
    """The ids of upstream messages the GM has applied (sent on ``sedna/node/<node>/ack``).

    ``resend``: a GM that just started asks the LC to send every message it has not seen
    acknowledged again at once (what was in flight when the last GM died is lost with it), so
    an outage costs the LC no ``resend_after`` wait.
    """

    ids: list[str] = Field(default_factory=list)
    resend: bool = False

    @field_validator("ids")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        for item in value:
            _check_id(item)
        return value
