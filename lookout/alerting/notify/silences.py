"""Silences: matcher sets that mute alerts for a time window, persisted in SQLite.

Semantics are Alertmanager's (``silence/silence.go``): a silence is *pending* before
``starts_at``, *active* until ``ends_at``, then *expired*. Updating a silence keeps its id only
when the change is harmless (same matchers; an active silence keeps its start and may not end in
the past; a pending one may not start in the past); otherwise the old silence is expired and a
new one with a new id is created, so history is never rewritten. Expiring an active silence sets
``ends_at`` to now; expiring a pending one sets both ends to now. Expired silences are kept for
``retention`` (Alertmanager's ``--data.retention``, default 120h) so users can see and recreate
them, then garbage-collected.

The store is stdlib ``sqlite3`` in its own table so it can share the Lookout data directory's
database file with other components; every write commits at once, so silences survive a crash.
All methods are synchronous and fast (one indexed row); the API calls them directly.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from lookout.alerting.matchers import Matcher, matches_all
from lookout.storage.statedb import open_state_db

__all__ = ["Silence", "SilenceError", "SilenceNotFound", "Silences"]

DEFAULT_RETENTION = 120 * 3600.0


class SilenceError(ValueError):
    """An invalid silence (bad times or matchers); the API maps it to 400."""


class SilenceNotFound(KeyError):
    """No silence with that id; the API maps it to 404."""


@dataclass(slots=True)
class Silence:
    matchers: list[Matcher]
    starts_at: float
    ends_at: float
    created_by: str = ""
    comment: str = ""
    id: str = ""
    updated_at: float = 0.0

    def state(self, now: float) -> str:
        if now < self.starts_at:
            return "pending"
        if self.ends_at <= now:
            return "expired"
        return "active"

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def mutes(self, labels: Mapping[str, str], now: float) -> bool:
        return self.active(now) and matches_all(self.matchers, labels)

    def to_row(self) -> tuple[str, str, float, float, float, str, str]:
        ms = json.dumps([m.to_api() for m in self.matchers])
        return (self.id, ms, self.starts_at, self.ends_at, self.updated_at, self.created_by, self.comment)

    @classmethod
    def from_row(cls, row: tuple) -> Silence:
        sid, ms, s, e, u, cb, c = row
        return cls(matchers=[Matcher.from_api(m) for m in json.loads(ms)], starts_at=s, ends_at=e,
                   created_by=cb, comment=c, id=sid, updated_at=u)


def _validate(s: Silence) -> None:
    if not s.matchers:
        raise SilenceError("at least one matcher required")
    for m in s.matchers:
        if not m.name:
            raise SilenceError("invalid label name: empty")
    if all(m.matches("") for m in s.matchers):
        raise SilenceError("at least one matcher must not match the empty string")
    if s.starts_at == 0 or s.ends_at == 0:
        raise SilenceError("invalid zero start or end timestamp")
    if s.ends_at < s.starts_at:
        raise SilenceError("end time must not be before start time")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS silences (id TEXT PRIMARY KEY, matchers TEXT NOT NULL, starts_at REAL NOT NULL,
    ends_at REAL NOT NULL, updated_at REAL NOT NULL, created_by TEXT NOT NULL, comment TEXT NOT NULL);
"""


class Silences:
    """The silence store. ``mutes(labels)`` is what the dispatcher and API ask on every alert."""

    def __init__(self, db_path: str | Path, *, clock: Callable[[], float] = time.time,
                 retention: float = DEFAULT_RETENTION) -> None:
        self._clock = clock
        self.retention = retention
        self._lock = threading.Lock()
        self._db = open_state_db(db_path, _SCHEMA)
        self._cache: dict[str, Silence] = {}
        for row in self._db.execute("SELECT id, matchers, starts_at, ends_at, updated_at, created_by, comment "
                                    "FROM silences"):
            s = Silence.from_row(row)
            self._cache[s.id] = s
        self.version = 0  # bumped on every change so callers can cache mute decisions

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, s: Silence) -> None:
        self._db.execute("INSERT OR REPLACE INTO silences VALUES (?, ?, ?, ?, ?, ?, ?)", s.to_row())
        self._cache[s.id] = s
        self.version += 1

    def get(self, sid: str) -> Silence:
        s = self._cache.get(sid)
        if s is None:
            raise SilenceNotFound(sid)
        return replace(s, matchers=list(s.matchers))

    def query(self, *, matchers: Iterable[Matcher] = (), state: str | None = None) -> list[Silence]:
        """Silences whose own matcher labels satisfy ``matchers`` (the API's ``filter[]``)."""
        now = self._clock()
        ms = list(matchers)
        out = []
        for s in list(self._cache.values()):
            if state is not None and s.state(now) != state:
                continue
            if ms:
                # Alertmanager filters silences by treating their equality matchers as a label set.
                lset = {m.name: m.value for m in s.matchers}
                if not matches_all(ms, lset):
                    continue
            out.append(replace(s, matchers=list(s.matchers)))
        return out

    def set(self, sil: Silence) -> str:
        """Create (no id) or update (id) a silence; returns the id, which changes if the update
        cannot be done in place (see the module docstring)."""
        now = self._clock()
        sil = replace(sil, matchers=list(sil.matchers))
        _validate(sil)
        with self._lock:
            prev = None
            if sil.id:
                prev = self._cache.get(sil.id)
                if prev is None:
                    raise SilenceNotFound(sil.id)
                if self._can_update(prev, sil, now):
                    sil.updated_at = now
                    self._write(sil)
                    return sil.id
            if sil.ends_at <= now:
                raise SilenceError("end time can't be in the past")
            if sil.starts_at < now:
                sil.starts_at = now  # a new silence cannot start in the past, as in Alertmanager
            if prev is not None and prev.state(now) != "expired":
                self._expire_locked(prev, now)
            sil.id = str(uuid.uuid4())
            sil.updated_at = now
            self._write(sil)
            return sil.id

    @staticmethod
    def _can_update(a: Silence, b: Silence, now: float) -> bool:
        if a.matchers != b.matchers:
            return False
        st = a.state(now)
        if st == "active":
            return int(a.starts_at) == int(b.starts_at) and b.ends_at >= now
        if st == "pending":
            return b.starts_at >= now
        return False

    def expire(self, sid: str) -> None:
        with self._lock:
            s = self._cache.get(sid)
            if s is None:
                raise SilenceNotFound(sid)
            now = self._clock()
            if s.state(now) == "expired":
                raise SilenceError(f"silence {sid} already expired")
            self._expire_locked(s, now)

    def _expire_locked(self, s: Silence, now: float) -> None:
        s = replace(s, matchers=list(s.matchers))
        if s.state(now) == "pending":
            s.starts_at = now
        s.ends_at = now
        s.updated_at = now
        self._write(s)

    def mutes(self, labels: Mapping[str, str], now: float | None = None) -> list[str]:
        """Ids of the active silences that match ``labels`` (sorted, for stable API output)."""
        t = self._clock() if now is None else now
        return sorted(s.id for s in self._cache.values() if s.mutes(labels, t))

    def gc(self) -> int:
        """Delete silences expired for longer than ``retention``; returns how many."""
        cutoff = self._clock() - self.retention
        with self._lock:
            dead = [sid for sid, s in self._cache.items() if s.ends_at < cutoff]
            for sid in dead:
                del self._cache[sid]
            if dead:
                self._db.executemany("DELETE FROM silences WHERE id = ?", [(d,) for d in dead])
                self.version += 1
        return len(dead)
