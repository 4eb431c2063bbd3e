"""The GM's de-duplication of upstream messages by envelope id, in Redis with expiry."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import redis

from broker.store import retry_redis

__all__ = ["Dedup"]

DEFAULT_TTL = 7 * 24 * 3600.0

# Marks every key in KEYS applied for ARGV[1] ms: one command for a whole batch of ids.
_MARK = """
for _, key in ipairs(KEYS) do
  redis.call('SET', key, 'applied', 'PX', ARGV[1])
end
return #KEYS
"""


class Dedup:
    """Remembers the ids of applied upstream messages for ``ttl`` seconds.

    The receiver checks a batch with `applied_ids` and marks the ids it applies with `commit`,
    in the same Redis transaction as the applied state's writes, so an id is marked exactly when
    its effect is durable. `applied` and `mark_applied` do the same for one id. `seen_before`
    claims an id atomically (``SET NX PX``) for callers whose apply is not idempotent; `forget`
    releases such a claim. Waits for Redis
    across restarts (never raises on a connection error unless ``timeout`` is set).
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        ttl: float = DEFAULT_TTL,
        key_prefix: str = "sedna:gm:seen",
        timeout: float | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"ttl must be positive seconds, got {ttl}")
        self._redis = client
        self._ttl_ms = max(1, int(ttl * 1000))
        self._prefix = key_prefix
        self._timeout = timeout
        self._stop = stop

    def _key(self, message_id: str) -> str:
        if not message_id:
            raise ValueError("message id must be non-empty")
        return f"{self._prefix}:{message_id}"

    def seen_before(self, message_id: str) -> bool:
        """Claim ``message_id``; True if it was already claimed (a duplicate), else False."""
        key = self._key(message_id)
        # A unique token tells our own claim from another's when a retry follows an attempt
        # whose reply was lost (the SET may have happened).
        token = uuid.uuid4().hex.encode()

        def claim() -> bool:
            if self._redis.set(key, token, nx=True, px=self._ttl_ms):
                return True
            return self._redis.get(key) == token

        return not retry_redis(claim, what="dedup claim", timeout=self._timeout, stop=self._stop)

    def applied(self, message_id: str) -> bool:
        """Whether ``message_id`` was marked applied (by :meth:`mark_applied`)."""
        key = self._key(message_id)
        return bool(
            retry_redis(
                lambda: self._redis.exists(key),
                what="dedup check",
                timeout=self._timeout,
                stop=self._stop,
            )
        )

    def applied_ids(self, message_ids: Sequence[str]) -> list[str]:
        """Those of ``message_ids`` marked applied (one round trip for all of them)."""
        if not message_ids:
            return []
        keys = [self._key(i) for i in message_ids]
        found = retry_redis(
            lambda: self._redis.mget(keys),
            what="dedup check",
            timeout=self._timeout,
            stop=self._stop,
        )
        return [i for i, value in zip(message_ids, found, strict=True) if value is not None]

    def commit(self, message_ids: Sequence[str], writes: Callable[[Any], None]) -> None:
        """Mark ``message_ids`` applied in one transaction (``MULTI/EXEC``) with ``writes``
        (a function queueing the applied state's own writes on the pipeline), so both are
        durable or neither is. Retried whole until Redis answers: every write must be
        idempotent (a retry after a lost reply repeats a committed transaction)."""
        keys = [self._key(i) for i in message_ids]

        def run() -> None:
            pipe = self._redis.pipeline(transaction=True)
            writes(pipe)
            if keys:
                pipe.eval(_MARK, len(keys), *keys, self._ttl_ms)
            pipe.execute()

        retry_redis(run, what="dedup commit", timeout=self._timeout, stop=self._stop)

    def mark_applied(self, message_id: str) -> None:
        """Remember ``message_id`` as applied, after applying it durably."""
        key = self._key(message_id)
        retry_redis(
            lambda: self._redis.set(key, b"applied", px=self._ttl_ms),
            what="dedup mark",
            timeout=self._timeout,
            stop=self._stop,
        )

    def forget(self, message_id: str) -> None:
        """Release a claim (the message was not applied after all)."""
        key = self._key(message_id)
        retry_redis(
            lambda: self._redis.delete(key),
            what="dedup forget",
            timeout=self._timeout,
            stop=self._stop,
        )
