"""Worker reports: the ``info`` body a worker POSTs to its LC, parsed once into the contract model.

The model is ``apis.messages.WorkerReport``; this module only turns its validation errors into
:class:`lc.errors.InvalidReport` naming the field, which the report server answers with 400.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from apis import WorkerReport
from lc.errors import InvalidReport, describe_validation_error, first_error_field


def parse_report(data: Any, worker: str | None = None) -> WorkerReport:
    """Validate a report body; ``worker`` (from the URL) fills or must match ``name``.

    Raises :class:`InvalidReport` naming the bad field.
    """
    if not isinstance(data, dict):
        raise InvalidReport("the body must be a JSON object", field=None)
    if worker is not None:
        if data.get("name") in (None, ""):
            data = {**data, "name": worker}
        elif data["name"] != worker:
            raise InvalidReport(
                f"name: {data['name']!r} does not match the worker {worker!r} in the path",
                field="name",
            )
    try:
        return WorkerReport.model_validate(data)
    except ValidationError as exc:
        raise InvalidReport(describe_validation_error(exc), field=first_error_field(exc)) from exc
