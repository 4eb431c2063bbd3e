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

    def stage(self) -> StagedRecords:
        """A batch of records to merge in memory, then commit (``Dedup.commit``) and keep."""
        return StagedRecords(self)

    def record(self, key: str, envelope: Envelope, message: Message) -> bool:
        """Merge one message into its subject's record and persist it at once; ``False``
        (nothing changed) for a copy or an older message than the one recorded."""
        staged = self.stage()
        if not staged.add(key, envelope, message) or staged.seal():
            return False
        if self._redis is not None:
            client = self._redis

            def write() -> None:
                pipe = client.pipeline(transaction=True)
                staged.write(pipe)
                pipe.execute()

            retry_redis(write, what="records write", stop=self._stop)
        staged.done()
        return True

    def current(self, key: str, subject: str) -> dict[str, Any] | None:
        """The record of one subject (as persisted), if any."""
        with self._lock:
            return self._records.get(key, {}).get(subject)

    @property
    def prefix(self) -> str:
        """The Redis key prefix of the records (``<prefix>:<object key>`` hashes)."""
        return self._prefix

    def keep_all(
        self,
        entries: dict[tuple[str, str], dict[str, Any]],
        decoded: dict[tuple[str, str], Recorded],
    ) -> None:
        """Hold committed records and their decoded messages in memory."""
        with self._lock:
            for (key, subject), entry in entries.items():
                self._keep(key, subject, entry, decoded[(key, subject)])

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


class StagedRecords:
    """Messages merged into records in memory: per object and subject, the latest of the batch
    (coalesced: one record write however many messages a subject had). Nothing is visible or
    durable until :meth:`write` is committed and :meth:`done` called; the caller owns the
    objects it stages (``broker.upstream`` gives each object to one applier)."""

    def __init__(self, records: Records) -> None:
        self._records = records
        self._entries: dict[tuple[str, str], dict[str, Any]] = {}  # (key, subject) -> record
        self._decoded: dict[tuple[str, str], Recorded] = {}
        self.messages = 0  # messages that changed a record
        self.coalesced = 0  # of those, merged into a record another message of the batch made

    @property
    def keys(self) -> list[str]:
        """The objects whose records changed, once each."""
        return list(dict.fromkeys(key for key, _ in self._entries))

    def add(self, key: str, envelope: Envelope, message: Message) -> bool:
        """Merge ``message`` into its subject's record; ``False`` (nothing changed) for a copy
        or an older message than the one recorded."""
        subject = subject_of(message)
        sent_at = envelope.sent_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        staged = self._entries.get((key, subject))
        old = staged if staged is not None else self._records.current(key, subject)
        if old is not None and _not_newer(envelope, sent_at, old):
            return False
        merged = merge_message((old or {}).get("message", {}), message.to_api())
        self._entries[(key, subject)] = {
            "seq": envelope.seq,
            "node": envelope.node,
            "sentAt": sent_at,
            "message": merged,
        }
        self.messages += 1
        self.coalesced += staged is not None
        return True

    def seal(self) -> list[str]:
        """Decode each merged record once (before the commit); a record that does not decode
        is left out. Returns what was wrong with those left out."""
        errors: list[str] = []
        for (key, subject), entry in list(self._entries.items()):
            try:
                message = parse_upstream(entry["message"])
            except ValueError as exc:  # ValidationError included
                errors.append(f"{key} {subject!r}: {exc}")
                del self._entries[(key, subject)]
                continue
            self._decoded[(key, subject)] = (subject, message, entry["sentAt"])
        return errors

    def write(self, pipe: Any) -> None:
        """Queue the records' writes on ``pipe`` (one ``HSET`` per object); idempotent."""
        prefix = self._records.prefix
        by_key: dict[str, dict[str, str]] = {}
        for (key, subject), entry in self._entries.items():
            by_key.setdefault(key, {})[subject] = json.dumps(entry, separators=(",", ":"))
        for key, mapping in by_key.items():
            pipe.hset(f"{prefix}:{key}", mapping=mapping)

    def done(self) -> None:
        """Make the committed records visible to status computations (after :meth:`seal`)."""
        if len(self._decoded) != len(self._entries):
            self.seal()
        self._records.keep_all(self._entries, self._decoded)


def merge_message(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new`` merged into ``old`` key by key, at every depth: the latest value of each key wins
    and a key the newer message does not carry keeps its older value (``output.taskInfo`` of a
    report stays when a phase change follows; an aggregator's last round's ``nodes`` stay when
    its final report carries only the totals). Lists and scalars are values: replaced whole."""
    merged = dict(old)
    for key, value in new.items():
        before = merged.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            merged[key] = merge_message(before, value)
        else:
            merged[key] = value
    return merged


def _not_newer(envelope: Envelope, sent_at: str, old: dict[str, Any]) -> bool:
    """A copy or an older message from the same node (whose ``seq`` only grows); a restarted
    outbox that counts from 1 again is told apart by its later ``sentAt``."""
    return envelope.node == old["node"] and envelope.seq <= old["seq"] and sent_at <= old["sentAt"]
