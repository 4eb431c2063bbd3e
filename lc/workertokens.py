"""Per-worker report tokens: a worker proves to its LC that it is the worker it names.

The LC gives every worker it starts ``SEDNA_WORKER_TOKEN``, an HMAC of the worker's
``namespace/name`` under a secret kept in the LC's data directory (so tokens survive LC restarts
and adopted workers keep theirs). The worker library sends it in the ``X-Sedna-Worker-Token``
header of each report; the report server accepts a report only for a worker this LC runs and
only with that worker's token.

Workers a kubelet runs (the GM's ``pods`` backend) carry a token the GM derived instead; the GM
tells the node's LC its digest (``apis.ReportingWorker``), so this LC checks it without being
able to issue it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from apis import WORKER_TOKEN_ENV as TOKEN_ENV
from apis import WORKER_TOKEN_HEADER as TOKEN_HEADER

__all__ = ["TOKEN_ENV", "TOKEN_HEADER", "WorkerTokens"]


class WorkerTokens:
    """Issues and checks the tokens of one LC's workers."""

    def __init__(self, data_dir: Path) -> None:
        path = data_dir / "worker-token-secret"
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_hex(32))
        self._secret = path.read_text().strip().encode()

    def token(self, namespace: str, name: str) -> str:
        """The token of worker ``namespace/name``."""
        return hmac.new(self._secret, f"{namespace}/{name}".encode(), hashlib.sha256).hexdigest()

    def valid(self, namespace: str, name: str, presented: str | None) -> bool:
        """Whether ``presented`` is that worker's token (constant-time comparison)."""
        return presented is not None and hmac.compare_digest(
            presented.encode(), self.token(namespace, name).encode()
        )
