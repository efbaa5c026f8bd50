"""Opening the SQLite files that several processes share (curriculum store, judge cache, generations).

Switching a new database to WAL needs a moment of exclusive access, and SQLite can answer "database
is locked" at once, without waiting, when two processes open the same new file together (every
rank of a training run does). So opening retries with backoff instead of failing.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tenacity import retry, retry_if_exception, stop_after_delay, wait_random_exponential


def _locked(err: BaseException) -> bool:
    return isinstance(err, sqlite3.OperationalError) and "locked" in str(err)


@retry(
    retry=retry_if_exception(_locked),
    wait=wait_random_exponential(multiplier=0.05, max=1.0),
    stop=stop_after_delay(60),
    reraise=True,
)
def open_shared(
    path: str | Path, schema: str, synchronous: str = "NORMAL", exclusive: bool = False
) -> sqlite3.Connection:
    """Autocommit connection in WAL mode with `schema` applied; safe to call from many processes at once.

    WAL keeps its index in shared memory, so processes on different hosts (a network filesystem) must not
    share a file. `exclusive`: this connection locks the file for its whole life and SQLite keeps the
    index in the process's own memory (no `-shm` file): safe on NFS, as fast as shared WAL, and a second
    process cannot open the file until this one closes it.
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=120, check_same_thread=False, isolation_level=None)
    try:
        if exclusive:  # before WAL is entered, or SQLite builds the shared-memory index anyway
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.executescript(schema)
    except BaseException:
        conn.close()
        raise
    return conn
