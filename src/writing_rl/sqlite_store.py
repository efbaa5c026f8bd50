"""Opening the SQLite files that several processes share (curriculum store, judge cache, generations).

Switching a new database to WAL needs a moment of exclusive access, and SQLite can answer "database
is locked" at once, without waiting, when two processes open the same new file together (every
rank of a training run does). So opening retries with backoff instead of failing.

Commands that only read a store (`curriculum show`, `report`) open it with `open_read_only`, which
never writes the file, never applies a schema, and leaves no `-wal`/`-shm` files behind; `describe`
names what an SQLite file holds, so such a command can refuse the wrong file in one line.
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


def open_read_only(path: str | Path) -> sqlite3.Connection:
    """A connection that cannot change `path` and creates no file beside it.

    A WAL database opened with a plain `mode=ro` gets a `-wal` and a `-shm` file that a read-only
    connection cannot remove again. So: where no `-wal` file exists, no process has the store open and
    all of it is in the main file, which is opened `immutable` (no locks, no side files). Where one
    exists (a running training run), `mode=ro` reads through it, seeing the latest commits, and the
    side files are the writer's. Raises FileNotFoundError for a missing file (`mode=ro` never creates).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    live = path.with_name(path.name + "-wal").exists()
    uri = path.resolve().as_uri() + ("?mode=ro" if live else "?mode=ro&immutable=1")
    # a reader of a WAL store never waits for its writers; only a file another process holds locked
    # (a training rank's exclusive judge cache) makes it wait, and then not for long
    return sqlite3.connect(uri, uri=True, timeout=5, check_same_thread=False, isolation_level=None)


# The table each writing-rl store has, and what to call a file that has it.
STORE_KINDS = {
    "samples": "a curriculum store",
    "judgements": "a judge or critic cache (judge_cache.sqlite, critic_cache.sqlite)",
    "generations": "a generation store (generations.sqlite)",
}


def describe(conn: sqlite3.Connection) -> tuple[set[str], str]:
    """The tables of an open database and what the file is, in words: a writing-rl store, an empty
    SQLite database, another SQLite database (its tables named), or no SQLite database at all."""
    try:
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.OperationalError:  # locked by another process, unreadable: not about what the file is
        raise
    except sqlite3.DatabaseError as err:  # "file is not a database"
        return set(), f"not an SQLite database ({err})"
    for table, kind in STORE_KINDS.items():
        if table in tables:
            return tables, kind
    if not tables:
        return tables, "an empty SQLite database"
    return tables, f"an SQLite database with the tables {', '.join(sorted(tables))}"
