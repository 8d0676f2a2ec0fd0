"""A node's alerting: rule files and built-in rules evaluated by the :class:`RuleManager`,
alerts handed to the built-in Alertmanager-compatible :class:`Notifier` (or to external
Alertmanagers), all state in the node's SQLite state database.

It knows no signal package: app.py hands in ``query_fn`` (PromQL and LogQL instant queries)
and ``append_fn`` (series written back through remote write), as it does for every other
component.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lookout.alerting import builtin
from lookout.alerting.amconfig import AlertmanagerConfig, load_config, parse_config
from lookout.alerting.api import AlertingApi
from lookout.alerting.evaluator import AppendFn, QueryFn, RuleManager
from lookout.alerting.model import Alert
from lookout.alerting.notify import ExternalAlertmanager, Notifier
from lookout.alerting.rulefile import RuleFileError, load_rule_files
from lookout.alerting.state import AlertState
from lookout.config import Alerting

log = logging.getLogger(__name__)

DEFAULT_AM_CONFIG = """
route:
  receiver: default
  group_by: [alertname]
receivers:
  - name: default
"""
"""Without an alertmanager_config, alerts are grouped and kept (the v2 API and amtool show
them, silences work) but sent nowhere."""


def load_alertmanager_config(cfg: Alerting) -> AlertmanagerConfig:
    return load_config(cfg.alertmanager_config) if cfg.alertmanager_config else parse_config(DEFAULT_AM_CONFIG)


class AlertingRuntime:
    def __init__(self, cfg: Alerting, state_db: Path, query_fn: QueryFn, append_fn: AppendFn, *,
                 selfmon_tenant: str) -> None:
        self.cfg = cfg
        self.selfmon_tenant = selfmon_tenant
        self.state = AlertState(state_db)
        self.external: ExternalAlertmanager | None = None
        self.notifier: Notifier | None = None
        if cfg.alertmanagers:
            self.external = ExternalAlertmanager(list(cfg.alertmanagers))
        else:
            self.notifier = Notifier(load_alertmanager_config(cfg), state_db, external_url=cfg.external_url)
        self.manager = RuleManager(query_fn, append_fn, self._notify, self.state,
                                   default_interval_s=cfg.evaluation_interval,
                                   external_labels=dict(cfg.external_labels), external_url=cfg.external_url)

    def _notify(self, tenant: str, alerts: list[Alert]) -> None:
        if self.external is not None:
            self.external.put(alerts)
        elif self.notifier is not None:
            self.notifier.put(alerts)

    def load_rules(self) -> None:
        """Rule files (into ``rule_tenant``) and the built-in rules (into the self-monitoring
        tenant); raises RuleFileError naming every problem."""
        self.manager.set_groups(self.cfg.rule_tenant, self._file_groups(), source="files")
        if self.cfg.builtin_rules:
            self.manager.set_groups(self.selfmon_tenant, builtin.groups(), source="builtin")
        self.manager.prune_state()

    def _file_groups(self) -> list:
        return load_rule_files(list(self.cfg.rule_files)) if self.cfg.rule_files else []

    def reload(self) -> list[str]:
        """SIGHUP or POST /-/reload: rule files and the Alertmanager config, without a restart.
        Returns the problems (nothing changes when there are any)."""
        try:
            groups = self._file_groups()
            am = load_alertmanager_config(self.cfg) if self.notifier is not None else None
        except RuleFileError as e:
            return list(e.problems)
        except Exception as e:  # amconfig.ConfigError and unreadable files
            return [str(e)]
        self.manager.set_groups(self.cfg.rule_tenant, groups, source="files")
        if am is not None and self.notifier is not None:
            self.notifier.reload(am)
        return []

    async def run(self, stop: asyncio.Event) -> None:
        if self.notifier is not None:
            await self.notifier.start()
        if self.external is not None:
            await self.external.start()
        try:
            await self.manager.run(stop)
        finally:
            if self.notifier is not None:
                await self.notifier.stop()
            if self.external is not None:
                await self.external.stop()

    def routes(self, resolve_tenant) -> list:
        routes = AlertingApi(self.manager, resolve_tenant, self.state).routes()
        if self.notifier is not None:
            routes += self.notifier.routes()
        return routes

    def collect(self) -> Iterable[tuple[str, str, str, list[Any]]]:
        """Prometheus' rule-manager metric names, so familiar dashboards and alerts work."""
        stats = self.manager.stats()
        for name, key, kind, help_text in (
                ("prometheus_rule_evaluations_total", "evaluations", "counter", "Rule evaluations."),
                ("prometheus_rule_evaluation_failures_total", "failures", "counter", "Rule evaluations that failed."),
                ("prometheus_rule_group_iterations_missed_total", "iterations_missed", "counter",
                 "Rule group evaluations skipped because the previous one took too long."),
                ("prometheus_rule_group_last_duration_seconds", "last_duration_seconds", "gauge",
                 "How long the last evaluation of the group took."),
                ("prometheus_rule_group_rules", "rules", "gauge", "Rules in the group.")):
            yield name, kind, help_text, [(name, {"tenant": s["tenant"], "rule_group": s["rule_group"]}, s[key])
                                          for s in stats]
        sender = self.notifier or self.external
        if sender is None:
            return
        receivers = sender.stats().get("receivers", {})
        for name, key, help_text in (("lookout_notifications_total", "sent", "Notifications delivered."),
                                     ("lookout_notifications_failed_total", "failed",
                                      "Notification attempts that failed (retried with backoff).")):
            yield name, "counter", help_text, [(name, {"receiver": r}, float(v.get(key, 0)))
                                               for r, v in sorted(receivers.items())]
