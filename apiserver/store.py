"""SQLite storage: objects, a global resourceVersion counter and a bounded event log for watches.

Every write happens in a transaction that takes the next resourceVersion(s), stores the object
and appends its event; an exception rolls everything back, so nothing half-written is kept.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS objects (
    grp TEXT NOT NULL, resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    rv INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (grp, resource, namespace, name)
);
CREATE TABLE IF NOT EXISTS events (
    rv INTEGER PRIMARY KEY, grp TEXT NOT NULL, resource TEXT NOT NULL,
    namespace TEXT NOT NULL, name TEXT NOT NULL, type TEXT NOT NULL,
    object TEXT NOT NULL, prev TEXT
);
CREATE INDEX IF NOT EXISTS events_by_resource ON events (grp, resource, rv);
"""


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Key:
    """Where an object lives: group, resource plural, namespace ("" if cluster-scoped), name."""

    group: str
    resource: str
    namespace: str
    name: str


@dataclass(frozen=True)
class Event:
    """One entry of the watch history."""

    rv: int
    type: str
    namespace: str
    name: str
    object: dict[str, Any]
    prev: dict[str, Any] | None


class StoreClosed(RuntimeError):
    """The store was closed while a request still used it."""


class Store:
    """Objects and history in one SQLite file; safe to share between threads."""

    def __init__(self, path: Path, history_size: int = 10_000) -> None:
        if history_size < 1:
            raise ValueError("history_size must be at least 1")
        self._history = history_size
        self._lock = threading.RLock()
        self._changed = threading.Condition(threading.Lock())
        self._conn: sqlite3.Connection | None = sqlite3.connect(
            str(path), check_same_thread=False, isolation_level=None
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        self._rv = int(self._meta("rv") or 0)
        self._compacted = int(self._meta("compacted") or 0)
        self._pending: int | None = None
        self._in_txn = False

    # --- basics ---------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreClosed("the store is closed")
        return self._conn

    def _meta(self, key: str) -> str | None:
        row = self._db().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self._db().execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def close(self) -> None:
        """Close the database and wake every waiting watcher."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        with self._changed:
            self._changed.notify_all()

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._conn is None

    @property
    def resource_version(self) -> int:
        """The latest committed resourceVersion."""
        return self._rv

    @property
    def compacted(self) -> int:
        """Watches must start at this resourceVersion or later; older history is gone."""
        return self._compacted

    @property
    def history_size(self) -> int:
        """How many events the watch history keeps."""
        return self._history

    # --- reads ----------------------------------------------------------------------------

    def get(self, key: Key) -> dict[str, Any] | None:
        """The stored object, or None."""
        with self._lock:
            row = (
                self._db()
                .execute(
                    "SELECT data FROM objects "
                    "WHERE grp=? AND resource=? AND namespace=? AND name=?",
                    (key.group, key.resource, key.namespace, key.name),
                )
                .fetchone()
            )
        return json.loads(row[0]) if row else None

    def list(
        self,
        group: str,
        resource: str,
        namespace: str | None = None,
        *,
        after: tuple[str, str] | None = None,
        name: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Objects of a resource ordered by (namespace, name), optionally after a position."""
        sql = "SELECT data FROM objects WHERE grp=? AND resource=?"
        args: list[Any] = [group, resource]
        if namespace is not None:
            sql += " AND namespace=?"
            args.append(namespace)
        if name is not None:
            sql += " AND name=?"
            args.append(name)
        if after is not None:
            sql += " AND (namespace, name) > (?, ?)"
            args.extend(after)
        sql += " ORDER BY namespace, name"
        with self._lock:
            rows = self._db().execute(sql, args).fetchall()
        for (data,) in rows:
            yield json.loads(data)

    def scan(
        self,
        group: str,
        resource: str,
        namespace: str | None = None,
        *,
        after: tuple[str, str] | None = None,
        name: str | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """Like `list`, plus the resourceVersion the read happened at."""
        with self._lock:
            return list(self.list(group, resource, namespace, after=after, name=name)), self._rv

    def snapshot(
        self, group: str, resource: str, namespace: str | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """All objects of a resource and the resourceVersion they were read at, atomically."""
        with self._lock:
            return list(self.list(group, resource, namespace)), self._rv

    def count_in_namespace(self, namespace: str) -> int:
        """How many namespaced objects (of any resource) live in a namespace."""
        with self._lock:
            row = (
                self._db()
                .execute("SELECT COUNT(*) FROM objects WHERE namespace = ?", (namespace,))
                .fetchone()
            )
        return int(row[0])

    def keys_in_namespace(self, namespace: str) -> list[Key]:
        """Keys of every object in a namespace."""
        with self._lock:
            rows = (
                self._db()
                .execute(
                    "SELECT grp, resource, namespace, name FROM objects WHERE namespace = ? "
                    "ORDER BY grp, resource, name",
                    (namespace,),
                )
                .fetchall()
            )
        return [Key(*row) for row in rows]

    def find_mentioning(self, text: str) -> list[tuple[Key, dict[str, Any]]]:
        """Objects whose stored JSON contains `text` (a cheap pre-filter, e.g. for a uid)."""
        with self._lock:
            rows = (
                self._db()
                .execute(
                    "SELECT grp, resource, namespace, name, data FROM objects "
                    "WHERE instr(data, ?) > 0",
                    (text,),
                )
                .fetchall()
            )
        return [(Key(*row[:4]), json.loads(row[4])) for row in rows]

    def events_after(
        self,
        rv: int,
        group: str,
        resource: str,
        namespace: str | None = None,
        limit: int = 500,
    ) -> tuple[list[Event], int]:
        """History events with resourceVersion > rv, and the latest resourceVersion seen."""
        sql = (
            "SELECT rv, type, namespace, name, object, prev FROM events "
            "WHERE grp=? AND resource=? AND rv > ?"
        )
        args: list[Any] = [group, resource, rv]
        if namespace is not None:
            sql += " AND namespace=?"
            args.append(namespace)
        sql += " ORDER BY rv LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._db().execute(sql, args).fetchall()
            latest = self._rv
        events = [
            Event(r[0], r[1], r[2], r[3], json.loads(r[4]), json.loads(r[5]) if r[5] else None)
            for r in rows
        ]
        if len(events) == limit:
            latest = events[-1].rv
        return events, latest

    def wait_for_change(self, seen: int, timeout: float) -> bool:
        """Block until the resourceVersion moves past `seen` (True) or `timeout` passes."""
        with self._changed:
            if self._rv > seen or self.closed:
                return self._rv > seen
            self._changed.wait(timeout)
            return self._rv > seen

    # --- writes ---------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A write transaction; committed on success, rolled back on any exception."""
        with self._lock:
            if self._in_txn:
                raise RuntimeError("transactions do not nest")
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            self._in_txn = True
            self._pending = self._rv
            txn = Transaction(self)
            try:
                yield txn
                if self._pending != self._rv:
                    self._set_meta("rv", str(self._pending))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            finally:
                self._in_txn = False
                pending, self._pending = self._pending, None
            changed = pending is not None and pending != self._rv
            if changed:
                self._rv = pending
                self._compact()
        if changed:
            with self._changed:
                self._changed.notify_all()

    def _next_rv(self) -> int:
        assert self._pending is not None
        self._pending += 1
        return self._pending

    def _compact(self) -> None:
        floor = self._rv - self._history
        # Trim in batches so that most commits do not pay for a DELETE.
        if floor - self._compacted < max(1, self._history // 10):
            return
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM events WHERE rv <= ?", (floor,))
            self._set_meta("compacted", str(floor))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._compacted = floor
        log.debug("watch history compacted up to resourceVersion %d", floor)

    def _write(self, key: Key, obj: dict[str, Any], event: str, prev: dict[str, Any] | None) -> int:
        rv = self._next_rv()
        obj.setdefault("metadata", {})["resourceVersion"] = str(rv)
        data = _dumps(obj)
        db = self._db()
        if event == "DELETED":
            db.execute(
                "DELETE FROM objects WHERE grp=? AND resource=? AND namespace=? AND name=?",
                (key.group, key.resource, key.namespace, key.name),
            )
        else:
            db.execute(
                "INSERT INTO objects (grp, resource, namespace, name, rv, data) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(grp, resource, namespace, name) "
                "DO UPDATE SET rv = excluded.rv, data = excluded.data",
                (key.group, key.resource, key.namespace, key.name, rv, data),
            )
        db.execute(
            "INSERT INTO events (rv, grp, resource, namespace, name, type, object, prev) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                rv,
                key.group,
                key.resource,
                key.namespace,
                key.name,
                event,
                data,
                _dumps(prev) if prev is not None and event == "MODIFIED" else None,
            ),
        )
        return rv


class Transaction:
    """Reads and writes inside one `Store.transaction()`."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, key: Key) -> dict[str, Any] | None:
        """The object as this transaction sees it."""
        return self._store.get(key)

    def put(self, key: Key, obj: dict[str, Any], prev: dict[str, Any] | None) -> dict[str, Any]:
        """Create (prev None) or replace an object; sets its resourceVersion."""
        self._store._write(key, obj, "ADDED" if prev is None else "MODIFIED", prev)
        return obj

    def delete(self, key: Key, obj: dict[str, Any]) -> dict[str, Any]:
        """Remove an object; `obj` (its last state) gets the deletion's resourceVersion."""
        self._store._write(key, obj, "DELETED", None)
        return obj

    def list(self, group: str, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Objects of a resource as this transaction sees them."""
        return list(self._store.list(group, resource, namespace))

    def keys_in_namespace(self, namespace: str) -> list[Key]:
        """Keys of every object in a namespace."""
        return self._store.keys_in_namespace(namespace)

    def find_mentioning(self, text: str) -> list[tuple[Key, dict[str, Any]]]:
        """Objects whose JSON contains `text`."""
        return self._store.find_mentioning(text)
