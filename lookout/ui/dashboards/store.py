"""Where dashboards live: the tenant's own in the state database, the shipped ones in files.

Saved dashboards are rows of the ``dashboards`` table in ``<data_dir>/state.db`` (the database
the alerting package keeps its state in), one per tenant and uid, holding the normalised JSON.
Saving follows Grafana's rules: a stale version or a title another dashboard already has is a
conflict unless the caller says overwrite, and every save increments the version.

Dashboards shipped with Lookout (``shipped/*.json``) are read at start, listed for every tenant
and read-only. The self-monitoring one is written for tenant "lookout" and served with the
node's configured self-monitoring tenant instead.

One connection guarded by a lock, in WAL mode, as :class:`lookout.alerting.state.AlertState`:
saves are rare and small, and a save checks and writes in one transaction.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lookout.storage.statedb import open_state_db
from lookout.ui.dashboards.model import normalize

SHIPPED_DIR = Path(__file__).parent / "shipped"
SHIPPED_SELFMON_TENANT = "lookout"  # the tenant the shipped files name for self-monitoring

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dashboards (
    tenant     TEXT NOT NULL,
    uid        TEXT NOT NULL,
    title      TEXT NOT NULL,
    tags       TEXT NOT NULL,
    doc        TEXT NOT NULL,
    version    INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (tenant, uid)
);
"""


class ReadOnly(Exception):
    """The dashboard is shipped with Lookout."""


class Conflict(Exception):
    """A save refused as Grafana refuses it; ``status`` is Grafana's word for why."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Dashboard:
    doc: dict[str, Any]
    shipped: bool
    version: int
    created: str | None  # RFC 3339, UTC; None for shipped dashboards
    updated: str | None

    def summary(self) -> dict[str, Any]:
        return {"uid": self.doc["uid"], "title": self.doc["title"], "tags": self.doc["tags"],
                "shipped": self.shipped, "version": self.version, "updated": self.updated}


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def read_shipped(selfmon_tenant: str = SHIPPED_SELFMON_TENANT, directory: Path = SHIPPED_DIR) -> dict[str, dict]:
    """The shipped dashboards by uid, normalised (a broken file fails the start, loudly)."""
    shipped: dict[str, dict] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            doc = normalize(json.loads(path.read_text()))
        except ValueError as e:
            raise ValueError(f"shipped dashboard {path.name}: {e}") from e
        if doc["tenant"] == SHIPPED_SELFMON_TENANT:
            doc["tenant"] = selfmon_tenant
        doc["version"] = doc["version"] or 1
        shipped[doc["uid"]] = doc
    return shipped


class DashboardStore:
    """Every method is one short transaction and thread-safe."""

    def __init__(self, path: str | Path, shipped: dict[str, dict] | None = None) -> None:
        self.path = str(path)
        self.shipped = shipped if shipped is not None else read_shipped()
        self._lock = threading.Lock()
        self._db = open_state_db(self.path, _SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def list(self, tenant: str) -> list[Dashboard]:
        """The tenant's dashboards and the shipped ones, sorted by title."""
        with self._lock:
            rows = self._db.execute("SELECT doc, version, created_at, updated_at FROM dashboards WHERE tenant = ?",
                                    (tenant,)).fetchall()
        found = [self._shipped(doc) for doc in self.shipped.values()] + [self._stored(*row) for row in rows]
        return sorted(found, key=lambda d: (d.doc["title"].lower(), d.doc["uid"]))

    def get(self, tenant: str, uid: str) -> Dashboard | None:
        if uid in self.shipped:
            return self._shipped(self.shipped[uid])
        with self._lock:
            row = self._db.execute("SELECT doc, version, created_at, updated_at FROM dashboards "
                                   "WHERE tenant = ? AND uid = ?", (tenant, uid)).fetchone()
        return self._stored(*row) if row else None

    def save(self, tenant: str, doc: dict[str, Any], *, overwrite: bool = False, new_uid: bool = False) -> Dashboard:
        """Create or update the normalised ``doc``; raises :class:`ReadOnly` or :class:`Conflict`.

        ``new_uid``: the uid was made from the title, so this is a new dashboard and a taken
        uid gets a ``-2``, ``-3``... suffix instead of replacing another."""
        uid = doc["uid"]
        if uid in self.shipped and not new_uid:
            raise ReadOnly(uid)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if new_uid:
                    uid = self._free_uid(tenant, uid)
                saved = self._save_locked(tenant, {**doc, "uid": uid}, overwrite)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return saved

    def delete(self, tenant: str, uid: str) -> bool:
        if uid in self.shipped:
            raise ReadOnly(uid)
        with self._lock:
            cur = self._db.execute("DELETE FROM dashboards WHERE tenant = ? AND uid = ?", (tenant, uid))
            return cur.rowcount > 0

    # ---- internals ----------------------------------------------------------------------------

    def _save_locked(self, tenant: str, doc: dict[str, Any], overwrite: bool) -> Dashboard:
        uid = doc["uid"]
        row = self._db.execute("SELECT version, created_at FROM dashboards WHERE tenant = ? AND uid = ?",
                               (tenant, uid)).fetchone()
        if row and not overwrite and doc["version"] is None:
            raise Conflict("version-mismatch", f"dashboard {uid} already exists (version {row[0]}); "
                                               "save with overwrite to replace it")
        if row and not overwrite and doc["version"] != row[0]:
            raise Conflict("version-mismatch", f"dashboard {uid} has been changed by someone else (version "
                                               f"{row[0]}, yours {doc['version']}); reload it, or save with "
                                               "overwrite to replace it")
        if not overwrite:
            other = self._titled(tenant, doc["title"], uid)
            if other is not None:
                raise Conflict("name-exists", f'a dashboard titled "{doc["title"]}" already exists ({other}); '
                                              "choose another title, or save with overwrite")
        now = time.time()
        version = (row[0] if row else 0) + 1
        created = row[1] if row else now
        stored = {**doc, "version": version}
        self._db.execute(
            "INSERT INTO dashboards (tenant, uid, title, tags, doc, version, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, uid) DO UPDATE SET title = excluded.title, "
            "tags = excluded.tags, doc = excluded.doc, version = excluded.version, updated_at = excluded.updated_at",
            (tenant, uid, doc["title"], json.dumps(doc["tags"]), json.dumps(stored), version, created, now))
        return Dashboard(stored, False, version, _rfc3339(created), _rfc3339(now))

    def _titled(self, tenant: str, title: str, except_uid: str) -> str | None:
        """The uid of another dashboard of the tenant (or shipped) with this title, any case."""
        for uid, doc in self.shipped.items():
            if doc["title"].lower() == title.lower():
                return uid
        row = self._db.execute("SELECT uid FROM dashboards WHERE tenant = ? AND lower(title) = lower(?) "
                               "AND uid != ? LIMIT 1", (tenant, title, except_uid)).fetchone()
        return row[0] if row else None

    def _free_uid(self, tenant: str, uid: str) -> str:
        taken = {r[0] for r in self._db.execute("SELECT uid FROM dashboards WHERE tenant = ? AND "
                                                "(uid = ? OR uid LIKE ?)", (tenant, uid, uid + "-%"))}
        taken |= set(self.shipped)
        candidate, n = uid, 1
        while candidate in taken:
            n += 1
            suffix = f"-{n}"
            candidate = uid[:40 - len(suffix)] + suffix
        return candidate

    @staticmethod
    def _shipped(doc: dict[str, Any]) -> Dashboard:
        return Dashboard(doc, True, doc["version"], None, None)

    @staticmethod
    def _stored(doc_json: str, version: int, created: float, updated: float) -> Dashboard:
        return Dashboard(json.loads(doc_json), False, version, _rfc3339(created), _rfc3339(updated))
