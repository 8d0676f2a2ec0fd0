"""Alerts on Lookout itself, on by default (``alerting.builtin_rules``).

They run over the node's own metrics, which it stores in the self-monitoring tenant
(``selfmon.tenant``, job="lookout"), so they show up in ``/api/v1/rules`` and ``/api/v1/alerts``
with ``X-Scope-OrgID: lookout`` and are routed like any other alert.
"""

from __future__ import annotations

from functools import cache

from lookout.alerting.rulefile import RuleGroup, parse_rule_file

SOURCE = "builtin:lookout.rules.yml"

RULES = """
groups:
  - name: lookout-self-monitoring
    interval: 30s
    rules:
      - alert: LookoutIngestionStalled
        expr: |
          sum by (tenant, signal) (
            rate(lookout_receiver_accepted_items_total{job="lookout", tenant!="lookout"}[5m])) == 0
          and
          sum by (tenant, signal) (
            increase(lookout_receiver_accepted_items_total{job="lookout", tenant!="lookout"}[1h])) > 0
        for: 10m
        labels: {severity: warning}
        annotations:
          summary: "Tenant {{ $labels.tenant }} stopped sending {{ $labels.signal }}"
          description: >-
            No {{ $labels.signal }} accepted for tenant {{ $labels.tenant }} in 5 minutes;
            it was sending in the last hour.
      - alert: LookoutRefusalsRising
        expr: sum by (tenant, signal, reason) (rate(lookout_receiver_refused_requests_total{job="lookout"}[5m])) > 0.1
        for: 10m
        labels: {severity: warning}
        annotations:
          summary: "Lookout is refusing {{ $labels.signal }} of {{ $labels.tenant }} ({{ $labels.reason }})"
          description: "{{ $value | humanize }} requests/s refused for {{ $labels.reason }}."
      - alert: LookoutWriteAheadLogLagGrowing
        expr: |
          lookout_log_consumer_lag_bytes{job="lookout"} > 64 * 1024 * 1024
          and deriv(lookout_log_consumer_lag_bytes{job="lookout"}[10m]) > 0
        for: 10m
        labels: {severity: warning}
        annotations:
          summary: "The {{ $labels.signal }} consumer falls behind the write-ahead log"
          description: "{{ $value | humanize1024 }}B appended but not yet consumed, and growing."
      - alert: LookoutDiskNearlyFull
        expr: lookout_data_disk_free_bytes{job="lookout"} / lookout_data_disk_size_bytes{job="lookout"} < 0.10
        for: 5m
        labels: {severity: critical}
        annotations:
          summary: "Lookout's data disk is {{ $value | humanizePercentage }} free"
          description: "When it fills, the write-ahead log refuses writes (429)."
      - alert: LookoutCompactionFailing
        expr: increase(lookout_compaction_failures_total{job="lookout"}[30m]) > 0
        labels: {severity: warning}
        annotations:
          summary: "Compaction of {{ $labels.signal }} blocks is failing"
          description: "See the node's log for the error; small blocks accumulate meanwhile."
      - alert: LookoutRuleFailing
        expr: increase(prometheus_rule_evaluation_failures_total{job="lookout"}[10m]) > 0
        labels: {severity: warning}
        annotations:
          summary: "Rule group {{ $labels.rule_group }} of tenant {{ $labels.tenant }} fails to evaluate"
          description: "GET /api/v1/rules shows the rule's lastError."
"""


@cache
def _groups() -> tuple[RuleGroup, ...]:
    return tuple(parse_rule_file(RULES, SOURCE))


def groups() -> list[RuleGroup]:
    return list(_groups())
