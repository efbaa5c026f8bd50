"""Persistent judgement cache: a re-run with the same inputs makes no judge calls.

SQLite in WAL mode. Shared (the default), several processes on one host can use one file. With
`exclusive=True` one process owns the file while it is open, and SQLite needs no shared memory: the
mode for a file on a network filesystem, where WAL's shared memory is unsafe. Training gives each rank
its own exclusive file (`rank_cache_path`). Only successful judgements are stored; a failure is retried
on the next run.

The file (and its folder) is created by the first stored judgement, not by opening the cache: a
command that fails before any judgement succeeds (a dead endpoint) leaves no cache file behind.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from ..sqlite_store import open_shared


def cache_key(**parts: Any) -> str:
    """Hash of everything that changes a judge's answer (canonical JSON, so key order never matters)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def rank_cache_path(path: str | Path, rank: int, world_size: int) -> Path:
    """Each training process's own cache file: `judge_cache.rank1.sqlite` for rank 1 of several; one
    process keeps the path as given."""
    path = Path(path)
    return path if world_size == 1 else path.with_name(f"{path.stem}.rank{rank}{path.suffix}")


class JudgeCache:
    def __init__(self, path: str | Path, exclusive: bool = False):
        """An existing file is opened at once (`exclusive`: and locked from now on); a missing one is
        created, with its folder, by the first `put`."""
        self.path = Path(path)
        self.exclusive = exclusive
        self._lock = threading.Lock()
        self._closed = False
        self._conn: sqlite3.Connection | None = self._open() if self.path.exists() else None
        self.hits = 0
        self.misses = 0

    def _open(self) -> sqlite3.Connection:
        return open_shared(
            self.path,
            "CREATE TABLE IF NOT EXISTS judgements (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
            exclusive=self.exclusive,
        )

    def _connection(self, create: bool) -> sqlite3.Connection | None:
        """The open connection; opened now if the file has appeared (another process wrote it) or `create`."""
        if self._closed:
            raise sqlite3.ProgrammingError(f"judge cache {self.path} is closed")
        if self._conn is None and (create or self.path.exists()):
            self._conn = self._open()
        return self._conn

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            conn = self._connection(create=False)
            row = (
                None if conn is None else conn.execute("SELECT value FROM judgements WHERE key = ?", (key,)).fetchone()
            )
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return json.loads(row[0])

    def put(self, key: str, value: dict[str, Any]) -> None:
        blob = json.dumps(value, ensure_ascii=False)
        with self._lock:
            conn = self._connection(create=True)
            assert conn is not None
            conn.execute("INSERT OR REPLACE INTO judgements (key, value) VALUES (?, ?)", (key, blob))

    def __len__(self) -> int:
        with self._lock:
            conn = self._connection(create=False)
            return 0 if conn is None else int(conn.execute("SELECT COUNT(*) FROM judgements").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
