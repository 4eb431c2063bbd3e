"""Component settings: one mechanism for every command (``sedna gm``, ``sedna lc``, later ones).

A component declares its settings as a pydantic model deriving from :class:`ComponentSettings`
and names each field's flag and environment variable in ``SOURCES``. The command line then reads
flags, falls back to the variables, then to the defaults, and validates everything once at
start-up; a bad value raises :class:`InvalidSettings` naming the flag and the variable (secrets
shown as ``***``). The flag and variable names are part of the CLI contract.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError


class InvalidSettings(ValueError):
    """Settings (flags or environment) that fail validation."""


@dataclass(frozen=True)
class Source:
    """Where one setting comes from: its flag, its environment variable, and its help text."""

    flag: str
    env: str
    help: str
    metavar: str | None = None
    secret: bool = False


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out = f"{out}[{part}]" if isinstance(part, int) else (f"{out}.{part}" if out else str(part))
    return out or "<root>"


class ComponentSettings(BaseModel):
    """Everything a component needs to start; passed down, never read from the environment
    again. Subclasses set ``COMPONENT`` (for messages) and ``SOURCES`` (field -> source)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    COMPONENT: ClassVar[str] = "component"
    SOURCES: ClassVar[Mapping[str, Source]] = {}

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Add a flag per setting to ``parser``, each naming its environment fallback."""
        group = parser.add_argument_group(cls.COMPONENT)
        for field, source in cls.SOURCES.items():
            default = cls.model_fields[field].default if field in cls.model_fields else None
            shown = "" if default is None or source.secret else f"; default {default}"
            group.add_argument(
                source.flag,
                dest=field,
                metavar=source.metavar,
                help=f"{source.help} (env {source.env}{shown})",
            )

    @classmethod
    def values_from(
        cls, ns: argparse.Namespace, environ: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """The values given: each flag, else its environment variable (empty means unset)."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field, source in cls.SOURCES.items():
            value = getattr(ns, field, None)
            if value is None:
                value = env.get(source.env) or None
            if value is not None:
                values[field] = value
        return values

    @classmethod
    def from_args(cls, ns: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Self:
        """Settings from flags, then the environment, then defaults."""
        return cls.build(cls.values_from(ns, environ))

    @classmethod
    def build(cls, values: Mapping[str, Any]) -> Self:
        """Validate settings given as field values; errors name the flag and the variable."""
        try:
            return cls.model_validate(dict(values))
        except ValidationError as exc:
            problems = []
            for err in exc.errors(include_url=False):
                loc = tuple(err.get("loc", ()))
                field = str(loc[0]) if loc else ""
                source = cls.SOURCES.get(field)
                name = f"{source.flag} (or {source.env})" if source else _location(loc)
                secret = source.secret if source else False
                shown = "***" if secret else repr(err.get("input"))
                problems.append(f"{name}: {err.get('msg', 'invalid value')} (got {shown})")
            raise InvalidSettings(
                f"invalid {cls.COMPONENT} settings: " + "; ".join(problems)
            ) from exc
