"""Recorded upstream messages: per object, the latest state each worker (or the LC) reported.

Upstream messages are state, not events: a worker's newer report supersedes its older one, and
a phase change keeps the report fields it does not carry. So the GM keeps, per object (the
work-queue key) and subject (the worker's name, or ``""`` for a Dataset's count), one record:
the merged message, the envelope's ``seq``, ``node`` and ``sentAt``. Statuses are computed from
these records (``gm.statuswriter``), so a burst of messages for one job becomes one status write.

A record is persisted in Redis before :meth:`Records.record` returns, and the receiver
acknowledges the message only after that: a GM that crashes at any point loses nothing, and a
copy re-sent after the crash is recognised by its ``seq`` and changes nothing.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC
from typing import Any

import redis

from apis import DatasetMessage, WorkerMessage, parse_upstream
from apis.stages import StageMessage
from broker import Envelope, retry_redis

log = logging.getLogger(__name__)

Message = WorkerMessage | DatasetMessage | StageMessage
#: (subject, message, RFC 3339 time it was sent)
Recorded = tuple[str, Message, str]

DEFAULT_PREFIX = "sedna:gm:records"


def subject_of(message: Message) -> str:
    """What a message is about within its object (its model's ``subject``): the worker, or
    ``""`` for the object itself. One record is kept per object and subject."""
    return message.subject


class Records:
    """The latest recorded message per object and subject, in memory and in Redis."""

    def __init__(
        self,
        client: redis.Redis | None,
        *,
        prefix: str = DEFAULT_PREFIX,
        stop: threading.Event | None = None,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._stop = stop
        self._lock = threading.Lock()
        self._writing = threading.Lock()
        self._records: dict[str, dict[str, dict[str, Any]]] = {}  # key -> subject -> record
        self._decoded: dict[str, dict[str, Recorded]] = {}  # the same, decoded once

    def load(self) -> int:
        """Read every persisted record (at start, before the first reconcile); returns how many."""
        if self._redis is None:
            return 0
        client = self._redis

        def read() -> dict[str, dict[Any, Any]]:
            found: dict[str, dict[Any, Any]] = {}
            for raw_key in client.scan_iter(match=f"{self._prefix}:*", count=500):
                name = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
                found[name[len(self._prefix) + 1 :]] = client.hgetall(raw_key)
            return found

        loaded = retry_redis(read, what="records load", stop=self._stop)
        count = 0
        with self._lock:
            for key, subjects in loaded.items():
                for raw, text in subjects.items():
                    subject = raw.decode() if isinstance(raw, bytes) else str(raw)
                    try:
                        self._keep(key, subject, json.loads(text))
                    except (ValueError, KeyError, TypeError) as exc:  # ValidationError included
                        log.error("dropping an unreadable record: %s", exc, extra={"key": key})
                        continue
                    count += 1
        return count

    def record(self, key: str, envelope: Envelope, message: Message) -> bool:
        """Merge ``message`` into its subject's record and persist it; ``False`` (nothing
        changed) for a copy or an older message than the one recorded."""
        subject = subject_of(message)
        sent_at = envelope.sent_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self._writing:  # one writer at a time; readers wait only for memory, not Redis
            with self._lock:
                old = self._records.get(key, {}).get(subject)
            if old is not None and _not_newer(envelope, sent_at, old):
                return False
            merged = {**(old or {}).get("message", {}), **message.to_api()}
            new = {"seq": envelope.seq, "node": envelope.node, "sentAt": sent_at, "message": merged}
            decoded = (subject, parse_upstream(merged), sent_at)
            self._persist(key, subject, new)
            with self._lock:
                self._keep(key, subject, new, decoded)
        return True

    def _keep(
        self, key: str, subject: str, entry: dict[str, Any], decoded: Recorded | None = None
    ) -> None:
        """Hold ``entry`` and its decoded message in memory (the caller holds the lock)."""
        if decoded is None:
            decoded = (subject, parse_upstream(entry["message"]), entry["sentAt"])
        self._records.setdefault(key, {})[subject] = entry
        self._decoded.setdefault(key, {})[subject] = decoded

    def of(self, key: str) -> list[Recorded]:
        """The recorded messages of one object, by subject."""
        with self._lock:
            decoded = dict(self._decoded.get(key, {}))
        return [decoded[subject] for subject in sorted(decoded)]

    def drop(self, key: str) -> None:
        """Forget an object's records (it was deleted)."""
        with self._lock:
            self._decoded.pop(key, None)
            if self._records.pop(key, None) is None:
                return
        if self._redis is not None:
            client = self._redis
            retry_redis(
                lambda: client.delete(f"{self._prefix}:{key}"), what="records drop", stop=self._stop
            )

    def _persist(self, key: str, subject: str, record: dict[str, Any]) -> None:
        if self._redis is None:
            return
        client = self._redis
        text = json.dumps(record, separators=(",", ":"))
        retry_redis(
            lambda: client.hset(f"{self._prefix}:{key}", subject, text),
            what="records write",
            stop=self._stop,
        )


def _not_newer(envelope: Envelope, sent_at: str, old: dict[str, Any]) -> bool:
    """A copy or an older message from the same node (whose ``seq`` only grows); a restarted
    outbox that counts from 1 again is told apart by its later ``sentAt``."""
    return envelope.node == old["node"] and envelope.seq <= old["seq"] and sent_at <= old["sentAt"]
