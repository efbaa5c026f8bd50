"""Curriculum state in SQLite: crash-safe, shared by several writer processes, resumable exactly.

Every update (outcomes, promotion, its event) is one `BEGIN IMMEDIATE` transaction, so concurrent
writers serialise instead of losing each other's promotions, and a killed process leaves either the
whole update or none of it. Sample keys are typed (`sample_key`): 5 and "5" are different samples.
`CurriculumStore(path, read_only=True)` (what `curriculum show` opens) never changes the file and
refuses one that is not a curriculum store.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ..sqlite_store import describe, open_read_only, open_shared

SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    key TEXT PRIMARY KEY,
    level INTEGER NOT NULL CHECK (level >= 0),
    n_refs INTEGER NOT NULL CHECK (n_refs >= 1),
    updated_step INTEGER NOT NULL DEFAULT 0,
    CHECK (level < n_refs)
);
CREATE TABLE IF NOT EXISTS outcomes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    level INTEGER NOT NULL,
    step INTEGER NOT NULL,
    score REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outcomes_key_level ON outcomes (key, level);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    step INTEGER NOT NULL,
    from_level INTEGER NOT NULL,
    to_level INTEGER NOT NULL,
    at REAL NOT NULL,
    writer TEXT NOT NULL
);
"""

TABLES = ("samples", "outcomes", "events")


class RecordResult(NamedTuple):
    level: int  # the sample's level after the update
    promoted: bool  # whether this update promoted it


@dataclass(frozen=True)
class SampleState:
    key: str
    level: int
    n_refs: int
    updated_step: int


# Decides, from the scores at the current level (win 1, tie credit, loss 0), whether to promote.
PromotionDecision = Callable[[list[float]], bool]


class NotACurriculumStore(ValueError):
    """A file opened read-only as a curriculum store holds something else (the message says what)."""

    exit_code = 2  # the wrong file was given


class CurriculumStore:
    def __init__(self, path: str | Path, read_only: bool = False):
        """Open (creating it if need be) the store at `path`. `read_only`: open an existing store for
        reading only: the file is never changed and no file is created (`sqlite_store.open_read_only`);
        a missing file raises FileNotFoundError, one without the curriculum tables NotACurriculumStore."""
        self.path = Path(path)
        if read_only:
            self._conn = open_read_only(self.path)
            tables, kind = describe(self._conn)
            if missing := [t for t in TABLES if t not in tables]:
                self._conn.close()
                if "samples" in tables:
                    kind = f"an incomplete curriculum store (no table {', '.join(missing)})"
                raise NotACurriculumStore(
                    f"{self.path} is {kind}, not a curriculum store (tables {', '.join(TABLES)}): give a run "
                    "folder or its curriculum.sqlite"
                )
        else:
            self._conn = open_shared(self.path, SCHEMA, synchronous="FULL")
        self.writer = f"{os.uname().nodename}:{os.getpid()}"

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> CurriculumStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def level(self, key: str) -> int:
        row = self._conn.execute("SELECT level FROM samples WHERE key = ?", (key,)).fetchone()
        return 0 if row is None else int(row[0])

    def levels(self) -> dict[str, int]:
        return {k: int(v) for k, v in self._conn.execute("SELECT key, level FROM samples ORDER BY key")}

    def states(self) -> list[SampleState]:
        rows = self._conn.execute("SELECT key, level, n_refs, updated_step FROM samples ORDER BY key")
        return [SampleState(*row) for row in rows]

    def events(self, limit: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT key, step, from_level, to_level, at, writer FROM events ORDER BY id DESC"
        rows = self._conn.execute(sql + (f" LIMIT {int(limit)}" if limit else "")).fetchall()
        cols = ("key", "step", "from_level", "to_level", "at", "writer")
        return [dict(zip(cols, r)) for r in rows]

    def record(
        self,
        key: str,
        n_refs: int,
        level_used: int,
        scores: list[float],
        step: int,
        should_promote: PromotionDecision,
    ) -> RecordResult:
        """Record one group's scores against `level_used` and promote if the rule says so.

        Scores judged against an older level than the current one (another writer promoted the sample
        meanwhile) are kept in the log but cannot promote again.
        """
        if n_refs < 1:
            raise ValueError("a sample needs at least one reference")
        with self._transaction() as db:
            row = db.execute("SELECT level FROM samples WHERE key = ?", (key,)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO samples (key, level, n_refs, updated_step) VALUES (?, 0, ?, ?)", (key, n_refs, step)
                )
                current = 0
            else:
                current = int(row[0])
            db.executemany(
                "INSERT INTO outcomes (key, level, step, score) VALUES (?, ?, ?, ?)",
                [(key, level_used, step, float(s)) for s in scores],
            )
            if level_used != current or current >= n_refs - 1 or not scores:
                return RecordResult(current, False)
            history = [
                r[0]
                for r in db.execute(
                    "SELECT score FROM outcomes WHERE key = ? AND level = ? ORDER BY id", (key, current)
                )
            ]
            if not should_promote(history):
                return RecordResult(current, False)
            db.execute("UPDATE samples SET level = ?, updated_step = ? WHERE key = ?", (current + 1, step, key))
            db.execute(
                "INSERT INTO events (key, step, from_level, to_level, at, writer) VALUES (?, ?, ?, ?, ?, ?)",
                (key, step, current, current + 1, time.time(), self.writer),
            )
            return RecordResult(current + 1, True)

    def record_scheduled(self, key: str, n_refs: int, level_used: int, scores: list[float], step: int) -> None:
        """Record one group's scores at a level the schedule chose (static, none, fixed).

        The sample's level becomes the one it was judged at. A change is logged as an event stamped
        `step - 1`: like a promotion logged at step s (in effect from s + 1), it is in effect from
        `step`, so `curriculum show` and the report's level plot read every schedule the same way.
        """
        if not 0 <= level_used < n_refs:
            raise ValueError(f"level {level_used} is outside the sample's {n_refs} references")
        with self._transaction() as db:
            row = db.execute("SELECT level FROM samples WHERE key = ?", (key,)).fetchone()
            before = 0 if row is None else int(row[0])
            db.execute(
                "INSERT INTO samples (key, level, n_refs, updated_step) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET level = excluded.level, n_refs = excluded.n_refs, "
                "updated_step = excluded.updated_step",
                (key, level_used, n_refs, step),
            )
            db.executemany(
                "INSERT INTO outcomes (key, level, step, score) VALUES (?, ?, ?, ?)",
                [(key, level_used, step, float(s)) for s in scores],
            )
            if level_used != before:
                db.execute(
                    "INSERT INTO events (key, step, from_level, to_level, at, writer) VALUES (?, ?, ?, ?, ?, ?)",
                    (key, step - 1, before, level_used, time.time(), self.writer),
                )

    def snapshot(self) -> dict[str, list[list[Any]]]:
        """Whole state as plain JSON-able data, consistent at one instant (saved with each checkpoint)."""
        with self._transaction() as db:
            return {t: [list(r) for r in db.execute(f"SELECT * FROM {t} ORDER BY rowid")] for t in TABLES}

    def restore(self, snapshot: dict[str, list[list[Any]]]) -> None:
        """Replace the whole state with a snapshot (resume from a checkpoint, forgetting later promotions)."""
        with self._transaction() as db:
            for table in TABLES:
                db.execute(f"DELETE FROM {table}")
                rows = snapshot.get(table, [])
                if rows:
                    marks = ",".join("?" * len(rows[0]))
                    db.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)

    def save_snapshot(self, path: str | Path) -> None:
        tmp = Path(path).with_suffix(".tmp")
        tmp.write_text(json.dumps(self.snapshot()), encoding="utf-8")
        os.replace(tmp, path)

    def load_snapshot(self, path: str | Path) -> None:
        self.restore(json.loads(Path(path).read_text(encoding="utf-8")))

    def integrity_ok(self) -> bool:
        """SQLite's own check plus ours: each sample's level is the sum of its logged level changes."""
        if self._conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            return False
        bad = self._conn.execute(
            "SELECT COUNT(*) FROM samples s WHERE s.level != "
            "(SELECT COALESCE(SUM(e.to_level - e.from_level), 0) FROM events e WHERE e.key = s.key)"
        ).fetchone()[0]
        return bad == 0
