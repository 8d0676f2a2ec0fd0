"""SQLite persistence for the rule evaluator: alert state per rule, and rule groups managed over HTTP.

Prometheus keeps alert state only in memory and, after a restart, rebuilds the ``for`` clock of
pending alerts from its own ``ALERTS_FOR_STATE`` series. Lookout writes those series too, but it
persists the whole alert state here as well, because then a restart also keeps what a query
cannot give back: firing alerts stay firing without waiting ``for`` again, resolved alerts are
still sent as resolved for their 15-minute retention, and ``LastSentAt`` keeps the resend cadence.

Rule groups created through the Loki ruler API live here too (one row per tenant, namespace and
group, holding the group's canonical YAML), so they survive restarts like the files do.

One connection, guarded by a lock, in WAL mode: writers are the evaluator threads and the HTTP
handlers, both small and infrequent; WAL lets readers proceed while a write commits.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lookout.storage.statedb import open_state_db

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_state (
    tenant     TEXT NOT NULL,
    rule_key   TEXT NOT NULL,
    alerts     TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (tenant, rule_key)
);
CREATE TABLE IF NOT EXISTS rule_groups (
    tenant     TEXT NOT NULL,
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    yaml       TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (tenant, namespace, name)
);
"""


class AlertState:
    """The evaluator's small data layer. Every method is one short transaction and thread-safe.

    Alert state is stored per rule as a JSON list of alert dicts under an opaque ``rule_key``
    (the evaluator builds it from file, group, rule name and rule labels, the identity Prometheus'
    ``copyState`` uses)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._db = open_state_db(self.path, _SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, statements: Iterable[tuple[str, tuple[Any, ...]]]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in statements:
                    self._db.execute(sql, args)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # ---- alert state ------------------------------------------------------------------------

    def save_alerts(self, tenant: str, by_rule: Mapping[str, list[dict[str, Any]]]) -> None:
        """Replace the stored alerts of each rule in ``by_rule``; an empty list deletes the row."""
        now = time.time()
        stmts: list[tuple[str, tuple[Any, ...]]] = []
        for key, alerts in by_rule.items():
            if alerts:
                stmts.append(("INSERT INTO alert_state (tenant, rule_key, alerts, updated_at) VALUES (?, ?, ?, ?) "
                              "ON CONFLICT (tenant, rule_key) DO UPDATE SET alerts = excluded.alerts, "
                              "updated_at = excluded.updated_at", (tenant, key, json.dumps(alerts), now)))
            else:
                stmts.append(("DELETE FROM alert_state WHERE tenant = ? AND rule_key = ?", (tenant, key)))
        if stmts:
            self._write(stmts)

    def load_alerts(self, tenant: str, rule_keys: Iterable[str] | None = None) -> dict[str, list[dict[str, Any]]]:
        """Stored alerts by rule key, for the given keys (or all of the tenant's)."""
        rows = self._read("SELECT rule_key, alerts FROM alert_state WHERE tenant = ?", (tenant,))
        wanted = None if rule_keys is None else set(rule_keys)
        return {k: json.loads(v) for k, v in rows if wanted is None or k in wanted}

    def delete_alerts(self, tenant: str, rule_keys: Iterable[str]) -> None:
        self._write(("DELETE FROM alert_state WHERE tenant = ? AND rule_key = ?", (tenant, k)) for k in rule_keys)

    def prune_alerts(self, keep: Mapping[str, set[str]]) -> int:
        """Delete the state of every rule not in ``keep`` (tenant -> rule keys): rules removed
        while the process was down would otherwise leave rows behind forever."""
        rows = self._read("SELECT tenant, rule_key FROM alert_state")
        doomed = [(t, k) for t, k in rows if k not in keep.get(t, set())]
        self._write(("DELETE FROM alert_state WHERE tenant = ? AND rule_key = ?", (t, k)) for t, k in doomed)
        return len(doomed)

    # ---- rule groups managed over HTTP ------------------------------------------------------

    def put_group(self, tenant: str, namespace: str, name: str, yaml_text: str) -> None:
        self._write([("INSERT INTO rule_groups (tenant, namespace, name, yaml, updated_at) VALUES (?, ?, ?, ?, ?) "
                      "ON CONFLICT (tenant, namespace, name) DO UPDATE SET yaml = excluded.yaml, "
                      "updated_at = excluded.updated_at", (tenant, namespace, name, yaml_text, time.time()))])

    def get_group(self, tenant: str, namespace: str, name: str) -> str | None:
        rows = self._read("SELECT yaml FROM rule_groups WHERE tenant = ? AND namespace = ? AND name = ?",
                          (tenant, namespace, name))
        return rows[0][0] if rows else None

    def list_groups(self, tenant: str, namespace: str | None = None) -> list[tuple[str, str, str]]:
        """``(namespace, name, yaml)`` rows, ordered by namespace then group name."""
        if namespace is None:
            return [tuple(r) for r in self._read(  # type: ignore[misc]
                "SELECT namespace, name, yaml FROM rule_groups WHERE tenant = ? ORDER BY namespace, name", (tenant,))]
        return [tuple(r) for r in self._read(  # type: ignore[misc]
            "SELECT namespace, name, yaml FROM rule_groups WHERE tenant = ? AND namespace = ? ORDER BY name",
            (tenant, namespace))]

    def delete_group(self, tenant: str, namespace: str, name: str) -> bool:
        with self._lock:
            cur = self._db.execute("DELETE FROM rule_groups WHERE tenant = ? AND namespace = ? AND name = ?",
                                   (tenant, namespace, name))
            return cur.rowcount > 0

    def delete_namespace(self, tenant: str, namespace: str) -> int:
        with self._lock:
            cur = self._db.execute("DELETE FROM rule_groups WHERE tenant = ? AND namespace = ?", (tenant, namespace))
            return cur.rowcount

    def group_tenants(self) -> list[str]:
        return [r[0] for r in self._read("SELECT DISTINCT tenant FROM rule_groups ORDER BY tenant")]
