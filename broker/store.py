"""Redis access for the bus's durable state: connection and retry until Redis answers.

Redis may restart (it runs with append-only persistence, so it comes back with its data); the
outbox and the de-duplication wait for it with backoff instead of failing or dropping messages.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

__all__ = ["StoreUnavailable", "connect_redis", "retry_redis"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# BusyLoadingError (Redis still reading its AOF) is a ConnectionError.
_TRANSIENT = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


class StoreUnavailable(Exception):
    """Redis did not answer within the time allowed (or the waiting component was closed)."""


def connect_redis(url: str, *, socket_timeout: float = 5.0) -> redis.Redis:
    """A Redis client for ``url`` with bounded timeouts; retries are left to `retry_redis`."""
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )


def retry_redis(
    operation: Callable[[], T],
    *,
    what: str,
    timeout: float | None = None,
    stop: threading.Event | None = None,
    min_delay: float = 0.05,
    max_delay: float = 2.0,
) -> T:
    """Run ``operation`` until Redis answers, backing off between attempts.

    Only connection errors are retried (operations must be idempotent or atomic); other Redis
    errors propagate. Raises `StoreUnavailable` after ``timeout`` seconds (``None``: wait for
    ever) or when ``stop`` is set.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = min_delay
    attempt = 0
    while True:
        try:
            result = operation()
        except _TRANSIENT as err:
            attempt += 1
            if attempt == 1 or attempt % 20 == 0:
                log.warning(
                    "redis unavailable; retrying",
                    extra={"operation": what, "attempt": attempt, "error": str(err)},
                )
            if deadline is not None and time.monotonic() + delay > deadline:
                raise StoreUnavailable(
                    f"{what}: redis did not answer within {timeout}s ({err})"
                ) from err
            if stop is not None:
                if stop.wait(delay):
                    raise StoreUnavailable(f"{what}: closed while waiting for redis") from err
            else:
                time.sleep(delay)
            delay = min(delay * 2, max_delay)
            continue
        if attempt:
            log.info("redis answers again", extra={"operation": what, "attempts": attempt})
        return result
