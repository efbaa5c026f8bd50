"""Persistent judgement cache: a re-run with the same inputs makes no judge calls.

SQLite in WAL mode. Shared (the default), several processes on one host can use one file. With
`exclusive=True` one process owns the file while it is open, and SQLite needs no shared memory: the
mode for a file on a network filesystem, where WAL's shared memory is unsafe. Training gives each rank
its own exclusive file (`rank_cache_path`). Only successful judgements are stored; a failure is retried
on the next run.
"""

from __future__ import annotations

import hashlib
import json
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
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = open_shared(
            self.path,
            "CREATE TABLE IF NOT EXISTS judgements (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
            exclusive=exclusive,
        )
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM judgements WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return json.loads(row[0])

    def put(self, key: str, value: dict[str, Any]) -> None:
        blob = json.dumps(value, ensure_ascii=False)
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO judgements (key, value) VALUES (?, ?)", (key, blob))

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM judgements").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
