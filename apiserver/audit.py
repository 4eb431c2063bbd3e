"""An opt-in log of API requests as RBAC sees them (verb, group, resource, namespace).

Enabled by ``ApiServer(audit_log=...)`` or the ``SEDNA_APISERVER_AUDIT_LOG`` environment
variable; every authorized request to a resource path is appended to the file as one JSON line.
``deploy/cluster``'s RBAC test replays these lines against the GM's ClusterRole.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict

AUDIT_LOG_ENV = "SEDNA_APISERVER_AUDIT_LOG"
# Subresources of a namespace itself, not resources inside it (as kube-apiserver's RequestInfo).
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_WRITE_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


class RequestAttributes(BaseModel):
    """What an authorizer sees of a resource request."""

    model_config = ConfigDict(frozen=True)

    user_agent: str = ""
    verb: str
    api_group: str
    resource: str
    subresource: str = ""
    namespace: str = ""
    name: str = ""


def request_attributes(
    method: str, path: str, query: Mapping[str, str], user_agent: str = ""
) -> RequestAttributes | None:
    """The RBAC attributes of a request, or None for a non-resource path (discovery, OpenAPI)."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        group, rest = "", parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        return None
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if method == "GET" and query.get("watch") in ("true", "1"):
        verb = "watch"
    elif method == "GET":
        verb = "get" if name else "list"
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = _WRITE_VERBS.get(method, method.lower())
    return RequestAttributes(
        user_agent=user_agent,
        verb=verb,
        api_group=group,
        resource=resource,
        subresource=subresource,
        namespace=namespace,
        name=name,
    )


class RequestLog:
    """Appends the attributes of every resource request to a file, one JSON object a line."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls, path: Path | None = None) -> RequestLog | None:
        """A log at ``path``, else at ``$SEDNA_APISERVER_AUDIT_LOG``, else None (off)."""
        chosen = path or os.environ.get(AUDIT_LOG_ENV)
        return cls(Path(chosen)) if chosen else None

    def record(self, method: str, path: str, query: Mapping[str, str], user_agent: str) -> None:
        """Log one request (non-resource paths are skipped)."""
        attributes = request_attributes(method, path, query, user_agent)
        if attributes is None:
            return
        line = json.dumps(attributes.model_dump(), sort_keys=True) + "\n"
        with self._lock, self.path.open("a") as out:
            out.write(line)


def read_log(path: Path) -> list[RequestAttributes]:
    """Every request recorded in a log file (none if it does not exist)."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [RequestAttributes.model_validate_json(line) for line in lines if line]
