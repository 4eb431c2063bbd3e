"""The knowledge base's storage: SQLite, one transaction per update.

SQLite rather than the project's Redis: the knowledge base is a system of record (what every
lifelong learning job has learnt), not a cache that can be rebuilt from the API and the bus,
and its data is relational (groups, tasks, models, samples and the links between them) with
the tables upstream Sedna and seed 004 name. Each update is one ``BEGIN IMMEDIATE`` transaction
in WAL mode with ``synchronous=FULL``, so a crash leaves either the old or the new knowledge,
and a restart loses nothing that was acknowledged.

Every row belongs to a knowledge base key (``kb``, one per job), so jobs do not share tasks.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kb.models import (
    SAMPLE_KIND_CODES,
    AIModel,
    KBIndex,
    KBSummary,
    MetricDefinition,
    MetricValue,
    StatusUpdate,
    TaskGroupEntry,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS ll_task_grp (
    id INTEGER PRIMARY KEY, kb TEXT NOT NULL, name TEXT NOT NULL,
    deploy INTEGER NOT NULL DEFAULT 1, sample_num INTEGER NOT NULL DEFAULT 0,
    task_num INTEGER NOT NULL DEFAULT 0, scores TEXT NOT NULL DEFAULT '{}',
    unseen INTEGER NOT NULL DEFAULT 0, updated_at REAL NOT NULL, UNIQUE (kb, name));
CREATE TABLE IF NOT EXISTS ll_tasks (
    id INTEGER PRIMARY KEY, kb TEXT NOT NULL, name TEXT NOT NULL,
    task_attr TEXT NOT NULL DEFAULT '[]', scores TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL, updated_at REAL NOT NULL, UNIQUE (kb, name));
CREATE TABLE IF NOT EXISTS ll_task_models (
    id INTEGER PRIMARY KEY,
    task_id INTEGER NOT NULL REFERENCES ll_task_grp (id) ON DELETE CASCADE,
    model_url TEXT NOT NULL, format TEXT NOT NULL DEFAULT '', metrics TEXT NOT NULL DEFAULT '{}',
    is_current INTEGER NOT NULL DEFAULT 1, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS ll_task_relation (
    id INTEGER PRIMARY KEY,
    grp_id INTEGER NOT NULL REFERENCES ll_task_grp (id) ON DELETE CASCADE,
    task_id INTEGER NOT NULL REFERENCES ll_tasks (id) ON DELETE CASCADE,
    transfer_radio REAL NOT NULL, UNIQUE (grp_id, task_id));
CREATE TABLE IF NOT EXISTS ll_samples (
    id INTEGER PRIMARY KEY, kb TEXT NOT NULL, data_url TEXT NOT NULL DEFAULT '',
    descr TEXT NOT NULL DEFAULT '', data_type INTEGER NOT NULL DEFAULT 0,
    sample_num INTEGER NOT NULL DEFAULT 0, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS ll_task_sample (
    id INTEGER PRIMARY KEY,
    sample_id INTEGER NOT NULL REFERENCES ll_samples (id) ON DELETE CASCADE,
    task_id INTEGER NOT NULL REFERENCES ll_tasks (id) ON DELETE CASCADE,
    UNIQUE (sample_id, task_id));
CREATE TABLE IF NOT EXISTS ll_index (
    kb TEXT PRIMARY KEY, document TEXT NOT NULL, create_time TEXT NOT NULL,
    version INTEGER NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS metric (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, label TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '', last_time REAL NOT NULL);
CREATE TABLE IF NOT EXISTS metric_value (
    id INTEGER PRIMARY KEY,
    metric_id INTEGER NOT NULL REFERENCES metric (id) ON DELETE CASCADE,
    label_value TEXT NOT NULL DEFAULT '', value REAL NOT NULL, last_time REAL NOT NULL,
    UNIQUE (metric_id, label_value));
CREATE INDEX IF NOT EXISTS ll_task_models_grp ON ll_task_models (task_id, is_current);
CREATE INDEX IF NOT EXISTS ll_task_relation_task ON ll_task_relation (task_id);
CREATE INDEX IF NOT EXISTS ll_task_sample_task ON ll_task_sample (task_id);
CREATE INDEX IF NOT EXISTS ll_samples_kb ON ll_samples (kb);
"""


class StoreError(ValueError):
    """A request the store cannot apply as asked (the message names the field)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class UnknownEntity(StoreError):
    """A named knowledge base, task or metric that does not exist."""


class KnowledgeStore:
    """Task groups, tasks, models, samples, relations, the index and custom metrics."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # One connection, serialised by a lock: updates are small and must not interleave.
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.executescript(SCHEMA)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    # -- the index -----------------------------------------------------------------------------

    def apply_index(self, index: KBIndex) -> int:
        """Make the knowledge base ``index.kb`` hold exactly ``index``; returns its version."""
        now = time.time()
        with self._transaction() as db:
            groups = [(g, False) for g in index.seen_task.task_groups]
            groups += [(g, True) for g in index.unseen_task.task_groups]
            names = [g.entry for g, _ in groups]
            _delete_absent(db, "ll_task_grp", index.kb, names)
            task_names = [t.entry for g, _ in groups for t in g.tasks]
            _delete_absent(db, "ll_tasks", index.kb, task_names)
            for group, unseen in groups:
                _upsert_group(db, index.kb, group, unseen, now)
            db.execute(
                "DELETE FROM ll_samples WHERE kb = ? AND id NOT IN "
                "(SELECT sample_id FROM ll_task_sample)",
                (index.kb,),
            )
            row = db.execute("SELECT version FROM ll_index WHERE kb = ?", (index.kb,)).fetchone()
            version = (row["version"] if row else 0) + 1
            db.execute(
                "INSERT INTO ll_index (kb, document, create_time, version, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (kb) DO UPDATE SET"
                " document = excluded.document, create_time = excluded.create_time,"
                " version = excluded.version,"
                " updated_at = excluded.updated_at",
                (index.kb, index.model_dump_json(), index.create_time, version, now),
            )
        return version

    def index(self, kb: str) -> dict[str, Any]:
        """The stored index document of ``kb`` (deploy flags as last set)."""
        rows = self._read("SELECT document FROM ll_index WHERE kb = ?", (kb,))
        if not rows:
            raise UnknownEntity("kb", f"no knowledge base {kb!r}")
        return json.loads(rows[0]["document"])

    def set_deploy(self, update: StatusUpdate) -> int:
        """Set the deploy flag of the named tasks (or groups) and in the index; returns version."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute(
                "SELECT document, version FROM ll_index WHERE kb = ?", (update.kb,)
            ).fetchone()
            if row is None:
                raise UnknownEntity("kb", f"no knowledge base {update.kb!r}")
            document = json.loads(row["document"])
            wanted = set(update.names())
            hit: set[str] = set()
            for side in ("seen_task", "unseen_task"):
                for group in document.get(side, {}).get("task_groups", []):
                    members = {group["entry"]} | {t["entry"] for t in group.get("tasks", [])}
                    if members & wanted:
                        group["deploy"] = bool(update.status)
                        hit |= members & wanted
                        db.execute(
                            "UPDATE ll_task_grp SET deploy = ?, updated_at = ? "
                            "WHERE kb = ? AND name = ?",
                            (update.status, now, update.kb, group["entry"]),
                        )
            missing = sorted(wanted - hit)
            if missing:
                raise UnknownEntity("tasks", f"unknown task(s) {', '.join(missing)}")
            version = row["version"] + 1
            db.execute(
                "UPDATE ll_index SET document = ?, version = ?, updated_at = ? WHERE kb = ?",
                (json.dumps(document), version, now, update.kb),
            )
        return version

    # -- reading --------------------------------------------------------------------------------

    def kbs(self) -> list[str]:
        """Every knowledge base key."""
        return [r["kb"] for r in self._read("SELECT kb FROM ll_index ORDER BY kb")]

    def describe(self, kb: str) -> dict[str, Any]:
        """Everything ``kb`` holds, table by table, plus its summary."""
        version = self._read("SELECT version, create_time FROM ll_index WHERE kb = ?", (kb,))
        if not version:
            raise UnknownEntity("kb", f"no knowledge base {kb!r}")
        tasks: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for t in self._read(
            "SELECT r.grp_id, t.name, t.task_attr, t.scores, r.transfer_radio"
            " FROM ll_task_relation r JOIN ll_tasks t ON t.id = r.task_id"
            " WHERE t.kb = ? ORDER BY t.id",
            (kb,),
        ):
            tasks[t["grp_id"]].append(
                {
                    "name": t["name"],
                    "task_attr": json.loads(t["task_attr"]),
                    "scores": json.loads(t["scores"]),
                    "transfer_radio": t["transfer_radio"],
                }
            )
        models: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for m in self._read(
            "SELECT m.* FROM ll_task_models m JOIN ll_task_grp g ON g.id = m.task_id"
            " WHERE g.kb = ? ORDER BY m.id",
            (kb,),
        ):
            models[m["task_id"]].append(
                {
                    "model_url": m["model_url"],
                    "format": m["format"],
                    "metrics": json.loads(m["metrics"]),
                    "is_current": bool(m["is_current"]),
                    "created_at": m["created_at"],
                }
            )
        samples: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for row in self._read(
            "SELECT r.grp_id, t.name AS task, s.data_url, s.data_type, s.sample_num"
            " FROM ll_samples s JOIN ll_task_sample ts ON ts.sample_id = s.id"
            " JOIN ll_tasks t ON t.id = ts.task_id JOIN ll_task_relation r ON r.task_id = t.id"
            " WHERE s.kb = ? ORDER BY s.id",
            (kb,),
        ):
            samples[row["grp_id"]].append(
                {
                    "task": row["task"],
                    "data_url": row["data_url"],
                    "data_type": _kind_name(row["data_type"]),
                    "sample_num": row["sample_num"],
                }
            )
        groups = [
            {
                "name": g["name"],
                "deploy": bool(g["deploy"]),
                "unseen": bool(g["unseen"]),
                "sample_num": g["sample_num"],
                "task_num": g["task_num"],
                "scores": json.loads(g["scores"]),
                "tasks": tasks[g["id"]],
                "models": models[g["id"]],
                "samples": samples[g["id"]],
            }
            for g in self._read("SELECT * FROM ll_task_grp WHERE kb = ? ORDER BY id", (kb,))
        ]
        return {
            "kb": kb,
            "version": version[0]["version"],
            "create_time": version[0]["create_time"],
            "task_groups": groups,
            "summary": self.summary(kb).model_dump(),
        }

    def summary(self, kb: str) -> KBSummary:
        """``status.knowledgeBase`` of the job whose knowledge base is ``kb``."""
        document = self.index(kb)
        models = []
        for g in self._read(
            "SELECT g.name, g.scores, g.sample_num FROM ll_task_grp g WHERE g.kb = ? AND "
            "g.unseen = 0 AND EXISTS (SELECT 1 FROM ll_task_models m WHERE m.task_id = g.id "
            "AND m.is_current = 1) ORDER BY g.id",
            (kb,),
        ):
            scores = json.loads(g["scores"])
            first = next(iter(scores.values()), 0.0)
            models.append(
                AIModel(
                    modelID=g["name"],
                    averagePrecision=float(first),
                    numberOfTrainSamples=g["sample_num"],
                )
            )
        return KBSummary.build(
            models,
            [str(c) for c in document.get("classes", [])],
            int(document.get("number_of_labeled_unseen_sample", 0)),
            int(document.get("number_of_unseen_sample", 0)),
        )

    def counts(self) -> list[dict[str, Any]]:
        """Per knowledge base: groups, tasks, current models, deployed groups (for /metrics)."""
        return [
            dict(r)
            for r in self._read(
                "SELECT i.kb AS kb, i.version AS version,"
                " (SELECT COUNT(*) FROM ll_task_grp g WHERE g.kb = i.kb) AS groups,"
                " (SELECT COUNT(*) FROM ll_tasks t WHERE t.kb = i.kb) AS tasks,"
                " (SELECT COUNT(*) FROM ll_task_grp g WHERE g.kb = i.kb AND g.deploy = 1)"
                "  AS deployed,"
                " (SELECT COUNT(*) FROM ll_task_models m JOIN ll_task_grp g ON g.id = m.task_id"
                "  WHERE g.kb = i.kb AND m.is_current = 1) AS models"
                " FROM ll_index i ORDER BY i.kb"
            )
        ]

    def group_rows(self) -> list[dict[str, Any]]:
        """Every task group with its kb, samples, deploy flag and scores (for /metrics)."""
        return [
            {**dict(r), "scores": json.loads(r["scores"])}
            for r in self._read(
                "SELECT kb, name, deploy, sample_num, task_num, scores FROM ll_task_grp ORDER BY id"
            )
        ]

    def relation_rows(self) -> list[dict[str, Any]]:
        """Every group-task membership with its transfer ratio (for /metrics)."""
        return [
            dict(r)
            for r in self._read(
                "SELECT g.kb AS kb, g.name AS grp, t.name AS task, r.transfer_radio AS ratio "
                "FROM ll_task_relation r JOIN ll_task_grp g ON g.id = r.grp_id "
                "JOIN ll_tasks t ON t.id = r.task_id ORDER BY r.id"
            )
        ]

    def model_rows(self) -> list[dict[str, Any]]:
        """Every group's current model: kb, group, url, format (for /metrics)."""
        return [
            dict(r)
            for r in self._read(
                "SELECT g.kb AS kb, g.name AS grp, m.model_url AS url, m.format AS format "
                "FROM ll_task_models m JOIN ll_task_grp g ON g.id = m.task_id "
                "WHERE m.is_current = 1 ORDER BY m.id"
            )
        ]

    def task_rows(self) -> list[dict[str, Any]]:
        """Every task with its attributes (JSON text) and its samples (for /metrics)."""
        tasks = [dict(r) for r in self._read("SELECT id, kb, name, task_attr FROM ll_tasks")]
        samples: dict[int, list[dict[str, Any]]] = {}
        for r in self._read(
            "SELECT ts.task_id AS task_id, s.data_url AS url, s.data_type AS type,"
            " s.sample_num AS num FROM ll_task_sample ts JOIN ll_samples s ON s.id = ts.sample_id"
            " ORDER BY s.id"
        ):
            samples.setdefault(r["task_id"], []).append(
                {"url": r["url"], "type": _kind_name(r["type"]), "num": r["num"]}
            )
        for task in tasks:
            task["samples"] = samples.get(task.pop("id"), [])
        return tasks

    # -- custom metrics (seed 004) ---------------------------------------------------------------

    def define_metric(self, definition: MetricDefinition) -> None:
        """Register (or re-describe) a custom metric; changing its labels drops its values."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute(
                "SELECT id, label FROM metric WHERE name = ?", (definition.name,)
            ).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO metric (name, label, note, last_time) VALUES (?, ?, ?, ?)",
                    (definition.name, definition.label, definition.note, now),
                )
                return
            if row["label"] != definition.label:
                db.execute("DELETE FROM metric_value WHERE metric_id = ?", (row["id"],))
            db.execute(
                "UPDATE metric SET label = ?, note = ?, last_time = ? WHERE id = ?",
                (definition.label, definition.note, now, row["id"]),
            )

    def set_metric_value(self, value: MetricValue) -> None:
        """Set one labelled value of a registered metric."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute(
                "SELECT id, label FROM metric WHERE name = ?", (value.metric,)
            ).fetchone()
            if row is None:
                raise UnknownEntity("metric", f"no metric {value.metric!r}; register it first")
            labels = [n for n in row["label"].split(",") if n]
            if len(value.label_values()) != len(labels):
                raise StoreError(
                    "label_value",
                    f"{len(value.label_values())} value(s) for the {len(labels)} label(s) "
                    f"{row['label'] or '(none)'} of {value.metric}",
                )
            db.execute(
                "INSERT INTO metric_value (metric_id, label_value, value, last_time) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (metric_id, label_value) DO UPDATE SET "
                "value = excluded.value, last_time = excluded.last_time",
                (row["id"], ",".join(value.label_values()), value.value, now),
            )

    def custom_metrics(self) -> list[dict[str, Any]]:
        """Every custom metric with its values."""
        result = []
        for m in self._read("SELECT id, name, label, note FROM metric ORDER BY id"):
            values = self._read(
                "SELECT label_value, value FROM metric_value WHERE metric_id = ? ORDER BY id",
                (m["id"],),
            )
            result.append(
                {
                    "name": m["name"],
                    "label": m["label"],
                    "note": m["note"],
                    "values": [
                        {"label_value": v["label_value"], "value": v["value"]} for v in values
                    ],
                }
            )
        return result


def _kind_name(code: int) -> str:
    return next((name for name, c in SAMPLE_KIND_CODES.items() if c == code), str(code))


def _delete_absent(db: sqlite3.Connection, table: str, kb: str, names: list[str]) -> None:
    marks = ",".join("?" * len(names))
    clause = f" AND name NOT IN ({marks})" if names else ""
    db.execute(f"DELETE FROM {table} WHERE kb = ?{clause}", (kb, *names))


def _upsert_group(
    db: sqlite3.Connection, kb: str, group: TaskGroupEntry, unseen: bool, now: float
) -> None:
    sample_num = group.sample_num or sum(t.samples.sample_num for t in group.tasks if t.samples)
    grp_id = db.execute(
        "INSERT INTO ll_task_grp (kb, name, deploy, sample_num, task_num, scores, unseen,"
        " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kb, name) DO UPDATE SET"
        " deploy = excluded.deploy, sample_num = excluded.sample_num,"
        " task_num = excluded.task_num, scores = excluded.scores, unseen = excluded.unseen,"
        " updated_at = excluded.updated_at RETURNING id",
        (
            kb,
            group.entry,
            int(group.deploy),
            sample_num,
            len(group.tasks),
            json.dumps(group.scores),
            int(unseen),
            now,
        ),
    ).fetchone()["id"]
    db.execute("DELETE FROM ll_task_relation WHERE grp_id = ?", (grp_id,))
    for task in group.tasks:
        task_id = db.execute(
            "INSERT INTO ll_tasks (kb, name, task_attr, scores, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (kb, name) DO UPDATE SET"
            " task_attr = excluded.task_attr, scores = excluded.scores,"
            " updated_at = excluded.updated_at RETURNING id",
            (kb, task.entry, json.dumps(task.meta_attr), json.dumps(task.scores), now, now),
        ).fetchone()["id"]
        db.execute(
            "INSERT INTO ll_task_relation (grp_id, task_id, transfer_radio) VALUES (?, ?, ?)",
            (grp_id, task_id, 1.0 / len(group.tasks)),
        )
        db.execute("DELETE FROM ll_task_sample WHERE task_id = ?", (task_id,))
        for samples in (task.samples, task.test_samples):
            if samples is None:
                continue
            sample_id = db.execute(
                "INSERT INTO ll_samples (kb, data_url, descr, data_type, sample_num, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    kb,
                    samples.data_url,
                    samples.descr,
                    SAMPLE_KIND_CODES[samples.data_type],
                    samples.sample_num,
                    now,
                ),
            ).fetchone()["id"]
            db.execute(
                "INSERT INTO ll_task_sample (sample_id, task_id) VALUES (?, ?)",
                (sample_id, task_id),
            )
    current = db.execute(
        "SELECT id, model_url FROM ll_task_models WHERE task_id = ? AND is_current = 1",
        (grp_id,),
    ).fetchone()
    url = group.model.url if group.model else None
    if current is not None and current["model_url"] != url:
        db.execute("UPDATE ll_task_models SET is_current = 0 WHERE id = ?", (current["id"],))
    if group.model is not None:
        metrics = json.dumps(group.model.metrics)
        if current is not None and current["model_url"] == url:
            db.execute(
                "UPDATE ll_task_models SET format = ?, metrics = ? WHERE id = ?",
                (group.model.format, metrics, current["id"]),
            )
        else:
            db.execute(
                "INSERT INTO ll_task_models (task_id, model_url, format, metrics, is_current,"
                " created_at) VALUES (?, ?, ?, ?, 1, ?)",
                (grp_id, group.model.url, group.model.format, metrics, now),
            )
