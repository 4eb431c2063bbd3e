"""SQLite storage: objects, a global resourceVersion counter and a bounded event log for watches.

Every write happens in a transaction that takes the next resourceVersion(s), stores the object
and appends its event; an exception keeps nothing of it. Concurrent transactions are committed
together in one SQLite transaction (group commit); each returns once its commit is done.
"""

from __future__ import annotations

import bisect
import itertools
import json
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# SQLite's `synchronous` under WAL: "full" syncs the log on every commit, "normal" at checkpoints.
SYNC_MODES = ("full", "normal")
# The latest committed events kept in memory too, so that watches read them without SQLite.
RECENT_EVENTS = 2048

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


class CommitFailed(RuntimeError):
    """Writing a group of transactions to disk failed; none of them was kept."""


@dataclass(frozen=True)
class _Write:
    """One row change of a transaction, as it goes into the events table."""

    rv: int
    key: Key
    type: str
    data: str  # the object's JSON (for DELETED, its last state)
    prev: str | None  # MODIFIED only: the object's JSON before

    def event_row(self) -> tuple[Any, ...]:
        """The row of the events table."""
        k = self.key
        return (self.rv, k.group, k.resource, k.namespace, k.name, self.type, self.data, self.prev)


class Store:
    """Objects and history in one SQLite file (WAL); safe to share between threads.

    Transactions run one at a time against the committed state plus the writes still waiting
    for their commit (`_pending`), take their resourceVersions and queue their writes. The
    first of them to wait while no commit is under way writes everything queued in one SQLite
    transaction (group commit), and only then are those transactions answered and their events
    shown to watches and reads: every read sees committed data only. `sync` is SQLite's
    `synchronous`: "full" syncs the WAL on every commit (a write survives a power loss),
    "normal" leaves it to the checkpoint (a write survives a killed process, the last ones may
    be lost on power loss).
    """

    def __init__(self, path: Path, history_size: int = 10_000, sync: str = "full") -> None:
        if history_size < 1:
            raise ValueError("history_size must be at least 1")
        if sync not in SYNC_MODES:
            raise ValueError(f"sync must be one of {', '.join(SYNC_MODES)}, not {sync!r}")
        self._path = str(path)
        self._history = history_size
        self._writer = self._connect()
        self._writer.execute("PRAGMA journal_mode=WAL")
        self._writer.execute(f"PRAGMA synchronous={sync.upper()}")
        self._writer.executescript(_SCHEMA)
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        # `_lock` runs transaction bodies one at a time; `_mu` guards the queue, the pending
        # writes and the committed resourceVersion (taken after `_lock`, never before it).
        self._lock = threading.RLock()
        self._in_txn = False
        self._mu = threading.Lock()
        self._committed = threading.Condition(self._mu)
        self._rv = int(self._meta("rv") or 0)  # committed
        self._next = self._rv  # the last resourceVersion handed out
        self._compacted = int(self._meta("compacted") or 0)
        self._queue: list[_Write] = []
        self._pending: dict[Key, tuple[int, str | None]] = {}  # key -> (rv, JSON or deleted)
        self._epoch = 0  # goes up when a group commit fails
        self._epoch_end: dict[int, int] = {}  # failed epoch -> the last rv it committed
        self._committing = False  # a thread is writing a group
        # Committed writes with resourceVersion > `_recent_from`, in order (`_recent_rvs` bisects).
        self._recent: list[_Write] = []
        self._recent_rvs: list[int] = []
        self._recent_from = self._rv
        self._recent_size = min(RECENT_EVENTS, history_size)
        self._closing = False
        self._closed = False

    # --- basics ---------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        """A connection for reads (committed data only), reused between requests."""
        if self._closed:
            raise StoreClosed("the store is closed")
        try:
            conn = self._readers.get_nowait()
        except queue.Empty:
            conn = self._connect()
        try:
            yield conn
        finally:
            if self._closed:
                conn.close()
            else:
                self._readers.put(conn)

    @contextmanager
    def _read_snapshot(self) -> Iterator[sqlite3.Connection]:
        """A reader inside one read transaction: every query sees the same commit."""
        with self._reader() as db:
            db.execute("BEGIN")
            try:
                yield db
            finally:
                db.execute("COMMIT")

    def _meta(self, key: str) -> str | None:
        row = self._writer.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self._writer.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def close(self) -> None:
        """Commit what is queued, close the database and wake every waiting watcher."""
        with self._mu:
            if self._closing:
                return
            self._closing = True
            while self._committing or self._queue:
                if self._committing:
                    self._committed.wait()
                else:
                    self._commit_queued()
            self._closed = True
            self._committed.notify_all()
        self._writer.close()
        while True:
            try:
                self._readers.get_nowait().close()
            except queue.Empty:
                break

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._closed

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

    # --- reads (committed data) -----------------------------------------------------------

    def _get_raw(self, key: Key) -> str | None:
        with self._reader() as db:
            row = db.execute(
                "SELECT data FROM objects WHERE grp=? AND resource=? AND namespace=? AND name=?",
                (key.group, key.resource, key.namespace, key.name),
            ).fetchone()
        return row[0] if row else None

    def get(self, key: Key) -> dict[str, Any] | None:
        """The stored object, or None."""
        data = self._get_raw(key)
        return json.loads(data) if data is not None else None

    @staticmethod
    def _list_query(
        group: str,
        resource: str,
        namespace: str | None,
        after: tuple[str, str] | None,
        name: str | None,
    ) -> tuple[str, list[Any]]:
        sql = "SELECT grp, resource, namespace, name, data FROM objects WHERE grp=? AND resource=?"
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
        return sql + " ORDER BY namespace, name", args

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
        return iter(self.scan(group, resource, namespace, after=after, name=name)[0])

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
        sql, args = self._list_query(group, resource, namespace, after, name)
        with self._read_snapshot() as db:
            rows = db.execute(sql, args).fetchall()
            rv = self._snapshot_rv(db)
        return [json.loads(row[4]) for row in rows], rv

    def snapshot(
        self, group: str, resource: str, namespace: str | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """All objects of a resource and the resourceVersion they were read at, atomically."""
        return self.scan(group, resource, namespace)

    @staticmethod
    def _snapshot_rv(db: sqlite3.Connection) -> int:
        row = db.execute("SELECT value FROM meta WHERE key = 'rv'").fetchone()
        return int(row[0]) if row else 0

    def count_in_namespace(self, namespace: str) -> int:
        """How many namespaced objects (of any resource) live in a namespace."""
        with self._reader() as db:
            row = db.execute(
                "SELECT COUNT(*) FROM objects WHERE namespace = ?", (namespace,)
            ).fetchone()
        return int(row[0])

    def _keys_in_namespace(self, namespace: str) -> dict[Key, str]:
        with self._reader() as db:
            rows = db.execute(
                "SELECT grp, resource, namespace, name, data FROM objects WHERE namespace = ?",
                (namespace,),
            ).fetchall()
        return {Key(*row[:4]): row[4] for row in rows}

    def keys_in_namespace(self, namespace: str) -> list[Key]:
        """Keys of every object in a namespace."""
        return sorted(self._keys_in_namespace(namespace), key=_key_order)

    def _mentioning(self, text: str) -> dict[Key, str]:
        with self._reader() as db:
            rows = db.execute(
                "SELECT grp, resource, namespace, name, data FROM objects WHERE instr(data, ?) > 0",
                (text,),
            ).fetchall()
        return {Key(*row[:4]): row[4] for row in rows}

    def find_mentioning(self, text: str) -> list[tuple[Key, dict[str, Any]]]:
        """Objects whose stored JSON contains `text` (a cheap pre-filter, e.g. for a uid)."""
        return [(key, json.loads(data)) for key, data in self._mentioning(text).items()]

    def events_after(
        self,
        rv: int,
        group: str,
        resource: str,
        namespace: str | None = None,
        limit: int = 500,
    ) -> tuple[list[Event], int]:
        """History events with resourceVersion > rv, and the latest resourceVersion seen."""
        with self._mu:
            recent = self._recent_after(rv, group, resource, namespace, limit)
        if recent is not None:
            rows, latest = recent
        else:
            rows, latest = self._events_from_disk(rv, group, resource, namespace, limit)
        events = [
            Event(r[0], r[1], r[2], r[3], json.loads(r[4]), json.loads(r[5]) if r[5] else None)
            for r in rows
        ]
        if len(events) == limit:
            latest = events[-1].rv
        return events, latest

    def _recent_after(
        self, rv: int, group: str, resource: str, namespace: str | None, limit: int
    ) -> tuple[list[tuple[Any, ...]], int] | None:
        """`events_after` from the events kept in memory (holding `_mu`); None if they do not
        reach back to `rv`."""
        if rv < self._recent_from:
            return None
        rows: list[tuple[Any, ...]] = []
        start = bisect.bisect_right(self._recent_rvs, rv)
        for write in itertools.islice(self._recent, start, None):
            key = write.key
            if key.resource != resource or key.group != group:
                continue
            if namespace is not None and key.namespace != namespace:
                continue
            rows.append((write.rv, write.type, key.namespace, key.name, write.data, write.prev))
            if len(rows) == limit:
                break
        return rows, self._rv

    def _events_from_disk(
        self, rv: int, group: str, resource: str, namespace: str | None, limit: int
    ) -> tuple[list[tuple[Any, ...]], int]:
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
        with self._read_snapshot() as db:
            rows = db.execute(sql, args).fetchall()
            latest = self._snapshot_rv(db)
        return rows, latest

    def wait_for_change(self, seen: int, timeout: float) -> bool:
        """Block until the resourceVersion moves past `seen` (True) or `timeout` passes."""
        with self._committed:
            if self._rv > seen or self._closed:
                return self._rv > seen
            self._committed.wait(timeout)
            return self._rv > seen

    # --- writes ---------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """A write transaction; returns once its writes are committed (as `sync` says), and
        keeps nothing of it on any exception (raises `CommitFailed` if the commit failed)."""
        failed: BaseException | None = None
        with self._lock:
            if self._in_txn:
                raise RuntimeError("transactions do not nest")
            if self._closing:
                raise StoreClosed("the store is closed")
            self._in_txn = True
            epoch, seen = self._epoch, self._next
            txn = Transaction(self, self._next)
            try:
                yield txn
                epoch, seen = self._enqueue(txn.writes)
            except BaseException as exc:
                failed = exc
            finally:
                self._in_txn = False
        # What the transaction read may still be on its way to disk: answer only after it is
        # there (an error such as AlreadyExists may have been decided on it, too).
        self._wait_committed(epoch, seen)
        if failed is not None:
            raise failed

    def _enqueue(self, writes: list[_Write]) -> tuple[int, int]:
        with self._mu:
            if writes:
                if self._closing:
                    raise StoreClosed("the store is closed")
                self._queue.extend(writes)
                for write in writes:
                    data = None if write.type == "DELETED" else write.data
                    self._pending[write.key] = (write.rv, data)
                self._next = writes[-1].rv
            return self._epoch, self._next

    def _wait_committed(self, epoch: int, rv: int) -> None:
        """Wait until resourceVersion `rv` of `epoch` is committed; CommitFailed if it failed.

        The first waiter finding no commit under way writes everything queued (group commit
        without a hand-off to another thread); the others wait for it and the next one leads.
        """
        with self._committed:
            while self._epoch == epoch and self._rv < rv:
                if self._committing or not self._queue:
                    self._committed.wait()
                else:
                    self._commit_queued()
            if self._epoch != epoch and rv > self._epoch_end[epoch]:
                raise CommitFailed("the store could not write this change to disk")

    def _pending_raw(self, key: Key) -> tuple[bool, str | None]:
        """(True, JSON or None if deleted) when a write of `key` awaits its commit."""
        with self._mu:
            entry = self._pending.get(key)
        return (False, None) if entry is None else (True, entry[1])

    def _pending_copy(self) -> dict[Key, str | None]:
        with self._mu:
            return {key: data for key, (_, data) in self._pending.items()}

    def _commit_queued(self) -> None:
        """Write every queued write in one SQLite transaction; called and returns holding `_mu`."""
        self._committing = True
        batch, self._queue = self._queue, []
        self._mu.release()
        try:
            compacted = self._write_batch(batch)
        except Exception:
            log.exception("group commit of %d writes failed; they are dropped", len(batch))
            self._forget_uncommitted()
            compacted = None
        finally:
            self._mu.acquire()
            self._committing = False
            self._committed.notify_all()
        if compacted is None:
            return
        self._rv = batch[-1].rv
        self._compacted = compacted
        for write in batch:
            entry = self._pending.get(write.key)
            if entry is not None and entry[0] <= self._rv:
                del self._pending[write.key]
        self._remember(batch)

    def _remember(self, batch: list[_Write]) -> None:
        """Keep a committed batch among the recent events (holding `_mu`)."""
        self._recent.extend(batch)
        self._recent_rvs.extend(write.rv for write in batch)
        excess = len(self._recent) - self._recent_size
        if excess >= max(1, self._recent_size // 4):  # trim in steps, not on every commit
            self._recent_from = self._recent_rvs[excess - 1]
            del self._recent[:excess]
            del self._recent_rvs[:excess]

    def _write_batch(self, batch: list[_Write]) -> int:
        """Write a group in one SQLite transaction; returns the compaction floor after it."""
        db = self._writer
        floor = batch[-1].rv - self._history
        # Trim the history in steps, so that most commits do not pay for a DELETE.
        compacted = self._compacted
        if floor - compacted >= max(1, self._history // 10):
            compacted = floor
        db.execute("BEGIN IMMEDIATE")
        try:
            for write in batch:
                key = write.key
                if write.type == "DELETED":
                    db.execute(
                        "DELETE FROM objects WHERE grp=? AND resource=? AND namespace=? AND name=?",
                        (key.group, key.resource, key.namespace, key.name),
                    )
                else:
                    db.execute(
                        "INSERT INTO objects (grp, resource, namespace, name, rv, data) "
                        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(grp, resource, namespace, name) "
                        "DO UPDATE SET rv = excluded.rv, data = excluded.data",
                        (key.group, key.resource, key.namespace, key.name, write.rv, write.data),
                    )
            db.executemany(
                "INSERT INTO events (rv, grp, resource, namespace, name, type, object, prev) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [w.event_row() for w in batch],
            )
            self._set_meta("rv", str(batch[-1].rv))
            if compacted != self._compacted:
                db.execute("DELETE FROM events WHERE rv <= ?", (compacted,))
                self._set_meta("compacted", str(compacted))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return compacted

    def _forget_uncommitted(self) -> None:
        """After a failed commit: drop every uncommitted write (later ones built on it)."""
        with self._lock, self._mu:
            self._epoch_end[self._epoch] = self._rv
            self._epoch += 1
            self._queue = []
            self._pending = {}
            self._next = self._rv
            self._committed.notify_all()


def _key_order(key: Key) -> tuple[str, str, str]:
    return key.group, key.resource, key.name


class Transaction:
    """Reads and writes inside one `Store.transaction()`.

    Reads see committed data, then writes awaiting their commit, then this transaction's own.
    """

    def __init__(self, store: Store, rv: int) -> None:
        self._store = store
        self._rv = rv
        self.writes: list[_Write] = []
        self._own: dict[Key, str | None] = {}  # this transaction's writes (None: deleted)
        self._read: dict[Key, str | None] = {}  # what it read from the store

    def _raw(self, key: Key) -> str | None:
        if key in self._own:
            return self._own[key]
        if key not in self._read:
            pending, data = self._store._pending_raw(key)
            self._read[key] = data if pending else self._store._get_raw(key)
        return self._read[key]

    def _merged(
        self, committed: Callable[[], dict[Key, str]], keep: Callable[[Key, str], bool]
    ) -> dict[Key, str]:
        """Committed rows overlaid with pending and own writes (pending copied first: a
        commit in between then shows in both, never in neither)."""
        changes = self._store._pending_copy()
        rows = committed()
        changes.update(self._own)
        for key, data in changes.items():
            if data is not None and keep(key, data):
                rows[key] = data
            else:
                rows.pop(key, None)
        return rows

    def get(self, key: Key) -> dict[str, Any] | None:
        """The object as this transaction sees it."""
        data = self._raw(key)
        return json.loads(data) if data is not None else None

    def _write(self, key: Key, obj: dict[str, Any], event: str, prev: str | None) -> None:
        self._rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._rv)
        data = _dumps(obj)
        self.writes.append(_Write(self._rv, key, event, data, prev))
        self._own[key] = None if event == "DELETED" else data

    def put(self, key: Key, obj: dict[str, Any], prev: dict[str, Any] | None) -> dict[str, Any]:
        """Create (prev None) or replace an object; sets its resourceVersion."""
        if prev is None:
            self._write(key, obj, "ADDED", None)
        else:
            self._write(key, obj, "MODIFIED", self._raw(key) or _dumps(prev))
        return obj

    def delete(self, key: Key, obj: dict[str, Any]) -> dict[str, Any]:
        """Remove an object; `obj` (its last state) gets the deletion's resourceVersion."""
        self._write(key, obj, "DELETED", None)
        return obj

    def list(self, group: str, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        """Objects of a resource as this transaction sees them, by (namespace, name)."""

        def committed() -> dict[Key, str]:
            sql, args = Store._list_query(group, resource, namespace, None, None)
            with self._store._reader() as db:
                return {Key(*row[:4]): row[4] for row in db.execute(sql, args).fetchall()}

        def keep(key: Key, _: str) -> bool:
            return (key.group, key.resource) == (group, resource) and namespace in (
                None,
                key.namespace,
            )

        rows = self._merged(committed, keep)
        return [json.loads(rows[k]) for k in sorted(rows, key=lambda k: (k.namespace, k.name))]

    def keys_in_namespace(self, namespace: str) -> list[Key]:
        """Keys of every object in a namespace."""
        rows = self._merged(
            lambda: self._store._keys_in_namespace(namespace),
            lambda key, _: key.namespace == namespace,
        )
        return sorted(rows, key=_key_order)

    def find_mentioning(self, text: str) -> list[tuple[Key, dict[str, Any]]]:
        """Objects whose JSON contains `text`."""
        rows = self._merged(lambda: self._store._mentioning(text), lambda _, data: text in data)
        return [(key, json.loads(data)) for key, data in rows.items()]
