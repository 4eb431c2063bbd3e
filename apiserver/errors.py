"""API errors and their Kubernetes `Status` form, with the real kube-apiserver's wording."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict


class StatusCause(BaseModel):
    """One cause of a failure (`details.causes[]`)."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = None
    message: str | None = None
    field: str | None = None


class StatusDetails(BaseModel):
    """`Status.details`: what object the failure is about."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    group: str | None = None
    kind: str | None = None
    uid: str | None = None
    causes: list[StatusCause] | None = None
    retryAfterSeconds: int | None = None


class Status(BaseModel):
    """A `meta/v1 Status` body, as every error (and a successful DELETE) returns."""

    model_config = ConfigDict(extra="forbid")

    kind: str = "Status"
    apiVersion: str = "v1"
    metadata: dict[str, Any] = {}
    status: str
    message: str | None = None
    reason: str | None = None
    details: StatusDetails | None = None
    code: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, leaving out empty optional fields as the real server does."""
        body = self.model_dump(exclude_none=True)
        details = body.get("details")
        if details is not None:
            body["details"] = {k: v for k, v in details.items() if v != ""}
        return body


# Field error types (k8s.io/apimachinery/pkg/util/validation/field): reason and message prefix.
REQUIRED = ("FieldValueRequired", "Required value")
INVALID = ("FieldValueInvalid", "Invalid value")
TYPE_INVALID = ("FieldValueTypeInvalid", "Invalid value")
NOT_SUPPORTED = ("FieldValueNotSupported", "Unsupported value")
TOO_LONG = ("FieldValueTooLong", "Too long")
TOO_MANY = ("FieldValueTooMany", "Too many")
FORBIDDEN = ("FieldValueForbidden", "Forbidden")
DUPLICATE = ("FieldValueDuplicate", "Duplicate value")

_OMIT = object()


class Raw(str):
    """A bad value Go prints without quotes (e.g. `0x0`)."""


def go_value(value: Any) -> str:
    """Render a bad value the way Go's field errors print it (`%q` for strings, `%v` else)."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return "null"
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


class FieldError:
    """One validation error on one field, rendered like `field.Error` of the real server."""

    __slots__ = ("bad_value", "detail", "field", "kind")

    def __init__(
        self,
        kind: tuple[str, str],
        field: str,
        bad_value: Any = _OMIT,
        detail: str = "",
    ) -> None:
        self.kind = kind
        self.field = field
        self.bad_value = bad_value
        self.detail = detail

    @property
    def reason(self) -> str:
        """The cause reason, e.g. `FieldValueRequired`."""
        return self.kind[0]

    def body(self) -> str:
        """The message without the field path, e.g. `Invalid value: 3: must be ...`."""
        text = self.kind[1]
        show_value = self.kind not in (REQUIRED, FORBIDDEN, TOO_LONG)
        if show_value and self.bad_value is not _OMIT:
            text = f"{text}: {go_value(self.bad_value)}"
        if self.detail:
            text = f"{text}: {self.detail}"
        return text

    def __str__(self) -> str:
        return f"{self.field}: {self.body()}" if self.field else self.body()

    def __repr__(self) -> str:
        return f"FieldError({self})"


def required(field: str, detail: str = "") -> FieldError:
    """`field: Required value`."""
    return FieldError(REQUIRED, field, detail=detail)


def invalid(field: str, value: Any, detail: str) -> FieldError:
    """`field: Invalid value: <value>: detail`."""
    return FieldError(INVALID, field, value, detail)


def forbidden(field: str, detail: str) -> FieldError:
    """`field: Forbidden: detail`."""
    return FieldError(FORBIDDEN, field, detail=detail)


def not_supported(field: str, value: Any, allowed: Sequence[Any]) -> FieldError:
    """`field: Unsupported value: "x": supported values: "a", "b"`."""
    quoted = ", ".join(go_value(v) for v in allowed)
    return FieldError(NOT_SUPPORTED, field, value, f"supported values: {quoted}")


def aggregate(errors: Sequence[Any]) -> str:
    """Join errors as Go's `utilerrors.Aggregate` does: one plain, several in brackets."""
    texts = [str(e) for e in errors]
    if len(texts) == 1:
        return texts[0]
    return "[" + ", ".join(texts) + "]"


class ApiError(Exception):
    """An error answered to the client as a `Status` with an HTTP code."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: StatusDetails | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> Status:
        """The `Status` body for this error."""
        return Status(
            status="Failure",
            message=self.message,
            reason=self.reason,
            details=self.details,
            code=self.code,
        )


def qualified(plural: str, group: str) -> str:
    """`datasets.sedna.io`, or just `pods` for the core group."""
    return f"{plural}.{group}" if group else plural


def not_found(plural: str, group: str, name: str) -> ApiError:
    """404 `datasets.sedna.io "x" not found`."""
    return ApiError(
        404,
        "NotFound",
        f'{qualified(plural, group)} "{name}" not found',
        StatusDetails(name=name, group=group, kind=plural),
    )


def path_not_found() -> ApiError:
    """404 for a path or resource type the server does not serve."""
    return ApiError(
        404, "NotFound", "the server could not find the requested resource", StatusDetails()
    )


def already_exists(plural: str, group: str, name: str) -> ApiError:
    """409 `datasets.sedna.io "x" already exists`."""
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified(plural, group)} "{name}" already exists',
        StatusDetails(name=name, group=group, kind=plural),
    )


def conflict(plural: str, group: str, name: str, detail: str | None = None) -> ApiError:
    """409 `Operation cannot be fulfilled on ...: the object has been modified; ...`."""
    detail = detail or (
        "the object has been modified; please apply your changes to the latest version "
        "and try again"
    )
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified(plural, group)} "{name}": {detail}',
        StatusDetails(name=name, group=group, kind=plural),
    )


def invalid_object(kind: str, group: str, name: str, errors: Sequence[FieldError]) -> ApiError:
    """422 `Kind.group "name" is invalid: field: message` with one cause per field error."""
    qualified_kind = f"{kind}.{group}" if group else kind
    causes = [StatusCause(reason=e.reason, message=e.body(), field=e.field) for e in errors]
    return ApiError(
        422,
        "Invalid",
        f'{qualified_kind} "{name}" is invalid: {aggregate(errors)}',
        StatusDetails(name=name, group=group, kind=kind, causes=causes),
    )


def bad_request(message: str) -> ApiError:
    """400 BadRequest."""
    return ApiError(400, "BadRequest", message)


def forbidden_error(message: str, plural: str = "", group: str = "", name: str = "") -> ApiError:
    """403 Forbidden."""
    details = StatusDetails(name=name or None, group=group, kind=plural or None)
    return ApiError(403, "Forbidden", message, details)


def method_not_allowed(verb: str) -> ApiError:
    """405 for a verb the resource does not support."""
    return ApiError(
        405,
        "MethodNotAllowed",
        f"the server does not allow this method on the requested resource ({verb})",
    )


PATCH_MEDIA_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
)


def unsupported_media_type(accepted: Sequence[str], why: str = "") -> ApiError:
    """415 with the list of media types the resource accepts."""
    message = (
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(accepted)
    )
    return ApiError(415, "UnsupportedMediaType", f"{message} ({why})" if why else message)


def expired(message: str) -> ApiError:
    """410 Expired (too old resource version, stale continue token)."""
    return ApiError(410, "Expired", message)


def unauthorized() -> ApiError:
    """401 for a request without a valid bearer token."""
    return ApiError(401, "Unauthorized", "Unauthorized")


def unprocessable(message: str) -> ApiError:
    """422 for a patch the server could not apply (e.g. a failed JSON Patch `test`)."""
    return ApiError(
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
        StatusDetails(causes=[StatusCause(reason="UnexpectedServerResponse", message=message)]),
    )
