"""Exception types of the LocalController and the one place that turns pydantic errors into text."""

from __future__ import annotations

from pydantic import ValidationError

from apis import InvalidSettings

__all__ = [
    "InvalidReport",
    "InvalidSettings",
    "InvalidWorkerSpec",
    "LCError",
    "describe_validation_error",
    "error_location",
    "first_error_field",
]


class LCError(Exception):
    """Base class of every error the LocalController raises on purpose."""


class InvalidWorkerSpec(LCError, ValueError):
    """A worker spec (pod template) that the process runtime cannot run."""


class InvalidReport(LCError, ValueError):
    """A worker report whose body fails validation."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def error_location(loc: tuple[int | str, ...], prefix: str = "") -> str:
    """Render a pydantic error location the way kubectl does: ``spec.containers[0].args``."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out or "<root>"


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """One line per problem, each naming the field: ``template.spec.containers: Field required``."""
    lines = []
    for err in exc.errors(include_url=False):
        where = error_location(tuple(err.get("loc", ())), prefix)
        lines.append(f"{where}: {err.get('msg', 'invalid value')}")
    return "; ".join(lines)


def first_error_field(exc: ValidationError, prefix: str = "") -> str | None:
    """The location of the first problem in a validation error, if any."""
    errors = exc.errors(include_url=False)
    if not errors:
        return None
    return error_location(tuple(errors[0].get("loc", ())), prefix)
