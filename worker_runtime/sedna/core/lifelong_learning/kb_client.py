"""A client of the knowledge base's upstream routes (``KB_SERVER``)."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from sedna.common.errors import SednaError
from sedna.core.lifelong_learning.index import KnowledgeIndex

# The KB is a cluster-internal service: never route through an HTTP proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class KnowledgeBaseError(SednaError):
    """The knowledge base refused a request or could not be reached."""


class KBClient:
    """``update``, ``update_status``, ``query`` and ``index`` of one knowledge base."""

    def __init__(self, server: str, kb: str = "default", timeout: float = 30.0) -> None:
        base = server.strip().rstrip("/")
        if "://" not in base:
            base = f"http://{base}"
        self.base = f"{base}/knowledgebase"
        self.kb = kb
        self.timeout = timeout

    def update(self, index: KnowledgeIndex) -> str:
        """Store ``index`` as the whole knowledge; returns the index's download path."""
        body = index.model_copy(update={"kb": self.kb}).model_dump(mode="json")
        return self._call("POST", "/update", body)

    def update_status(self, tasks: list[str], deploy: bool) -> str:
        """Flag ``tasks`` deployable (or not)."""
        body = {"kb": self.kb, "tasks": ",".join(tasks), "status": int(deploy)}
        return self._call("POST", "/update/status", body)

    def query(self) -> dict[str, Any]:
        """Everything this knowledge base holds, with its summary."""
        return self._call("POST", "/query", {"kb": self.kb})

    def index(self) -> KnowledgeIndex:
        """The stored index."""
        return KnowledgeIndex.model_validate(
            self._call("GET", "/index?" + urllib.parse.urlencode({"kb": self.kb}))
        )

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            detail = error.read(2000).decode(errors="replace")
            with contextlib.suppress(ValueError, AttributeError):
                detail = json.loads(detail).get("error", detail)
            raise KnowledgeBaseError(
                f"knowledge base {method} {path} refused ({error.code}): {detail}"
            ) from None
        except (OSError, ValueError) as error:
            raise KnowledgeBaseError(f"knowledge base {self.base} unreachable: {error}") from None
