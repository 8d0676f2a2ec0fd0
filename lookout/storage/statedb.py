"""The state database (<data_dir>/state.db): Lookout's own small state (alert state, silences,
rule groups, dashboards) in SQLite, each owner with its own tables.

One connection per owner, shared by threads behind the owner's lock; WAL journal so readers
never wait for a writer, synchronous=NORMAL (durable at checkpoints, safe against corruption).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def open_state_db(path: str | Path, schema: str) -> sqlite3.Connection:
    """Open (creating the directory and ``schema``'s tables if needed) in autocommit mode: owners
    group their statements with explicit BEGIN IMMEDIATE ... COMMIT."""
    path = str(path)
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(schema)
    return db
