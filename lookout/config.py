"""One typed config tree, loaded from YAML and validated with errors that name their path.

Every setting has an embedded default, so ``lookout serve`` with no file runs a whole node.
Validation collects *all* problems before failing, each as ``path: expected ..., got ...``, so a
user fixes a config in one round; ``check-config`` and ``serve`` share the same checks.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lookout.storage.durations import parse_bytes, parse_duration


class ConfigError(ValueError):
    """All problems found in one config, one ``path: message`` per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(slots=True)
class Listen:
    otlp_grpc: str = "127.0.0.1:4317"
    otlp_http: str = "127.0.0.1:4318"
    http: str = "127.0.0.1:3000"
    health: str = "127.0.0.1:13133"


@dataclass(slots=True)
class Ingest:
    max_request_bytes: int = 64 << 20  # after decompression (OTLP spec recommends 64 MiB)
    max_inflight_bytes: int = 256 << 20  # request bodies held in memory at once
    tenant_header: str = "X-Scope-OrgID"
    default_tenant: str = "default"


@dataclass(slots=True)
class Wal:
    segment_size: int = 64 << 20
    max_size: int = 8 << 30
    commit_interval: float = 0.005
    fsync: bool = True


@dataclass(slots=True)
class Storage:
    retention: float = 30 * 86400.0
    flush_interval: float = 30.0  # oldest head data is flushed to a block after this long
    flush_size: int = 64 << 20  # or once the head holds this many bytes
    head_max_size: int = 512 << 20  # hard bound: the consumer waits, the WAL absorbs, then 429
    row_group_rows: int = 32768
    compaction_interval: float = 60.0
    compaction_window: float = 3600.0
    compaction_min_blocks: int = 2


# Loki's default OTLP resource attributes that become stream labels (distributor otlp_config)
LOKI_STREAM_ATTRIBUTES = [
    "service.name", "service.namespace", "service.instance.id", "deployment.environment",
    "deployment.environment.name", "cloud.region", "cloud.availability_zone", "k8s.cluster.name",
    "k8s.namespace.name", "k8s.pod.name", "k8s.container.name", "container.name", "k8s.replicaset.name",
    "k8s.deployment.name", "k8s.statefulset.name", "k8s.daemonset.name", "k8s.cronjob.name", "k8s.job.name",
]

TRANSLATION_STRATEGIES = ("UnderscoreEscapingWithSuffixes", "UnderscoreEscapingWithoutSuffixes",
                          "NoUTF8EscapingWithSuffixes", "NoTranslation")


@dataclass(slots=True)
class Metrics:
    lookback_delta: float = 300.0
    query_timeout: float = 120.0
    query_max_samples: int = 50_000_000
    out_of_order_time_window: float = 0.0  # 0: refuse (and count) out-of-order samples, as Prometheus
    max_active_series: int = 1_000_000  # per tenant
    max_samples_per_second: int = 1_000_000  # per tenant, 0 = unlimited
    translation_strategy: str = "UnderscoreEscapingWithSuffixes"
    promote_resource_attributes: list[str] = field(default_factory=list)
    keep_identifying_resource_attributes: bool = False


@dataclass(slots=True)
class Logs:
    stream_labels: list[str] = field(default_factory=lambda: list(LOKI_STREAM_ATTRIBUTES))
    max_query_lines: int = 10_000  # Loki's max_entries_limit_per_query is 5000; the UI pages 10,000 lines
    max_query_series: int = 500
    max_query_range: float = 30 * 86400.0
    max_line_size: int = 256 << 10
    reject_old_samples_max_age: float = 7 * 86400.0  # Loki's default; 0 accepts any age
    max_lines_per_second: int = 1_000_000  # per tenant, 0 = unlimited


@dataclass(slots=True)
class Selfmon:
    interval: float = 15.0  # how often the node stores its own /metrics; 0 disables
    tenant: str = "lookout"  # where they go (query with X-Scope-OrgID: lookout)


@dataclass(slots=True)
class Alerting:
    rule_files: list[str] = field(default_factory=list)  # globs of Prometheus / Loki-ruler rule files
    rule_tenant: str = "default"  # the tenant rule files evaluate against (API rules: the caller's)
    evaluation_interval: float = 60.0  # groups without their own interval
    external_url: str = ""  # in generator URLs and notifications
    external_labels: dict[str, str] = field(default_factory=dict)
    alertmanager_config: str = ""  # an Alertmanager YAML file for the built-in notifier
    alertmanagers: list[str] = field(default_factory=list)  # send to these Alertmanagers instead
    builtin_rules: bool = True  # alerts on Lookout itself (ingestion stalled, refusals, WAL lag...)


@dataclass(slots=True)
class Config:
    data_dir: str = "./lookout-data"
    listen: Listen = field(default_factory=Listen)
    ingest: Ingest = field(default_factory=Ingest)
    wal: Wal = field(default_factory=Wal)
    storage: Storage = field(default_factory=Storage)
    metrics: Metrics = field(default_factory=Metrics)
    logs: Logs = field(default_factory=Logs)
    selfmon: Selfmon = field(default_factory=Selfmon)
    pipeline: dict[str, Any] = field(default_factory=dict)  # checked by lookout/pipeline/config.py
    alerting: Alerting = field(default_factory=Alerting)
    shutdown_timeout: float = 30.0
    log_level: str = "info"


TENANT_RE = re.compile(r"^[A-Za-z0-9!_.*'()-]{1,150}$")
"""Tenant ids as Cortex/Mimir/Loki/Tempo accept them; ``.`` and ``..`` are refused separately."""

_DURATION_FIELDS = {"commit_interval", "retention", "flush_interval", "compaction_interval",
                    "compaction_window", "shutdown_timeout", "lookback_delta", "query_timeout",
                    "out_of_order_time_window", "max_query_range", "reject_old_samples_max_age", "interval",
                    "evaluation_interval"}
_SIZE_FIELDS = {"max_request_bytes", "max_inflight_bytes", "segment_size", "max_size", "flush_size",
                "head_max_size", "max_line_size"}
_LOG_LEVELS = {"debug", "info", "warning", "error"}


def valid_tenant(tenant: str) -> bool:
    return bool(TENANT_RE.match(tenant)) and tenant not in {".", ".."}


def parse_hostport(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[v6]:PORT``; port 0 asks the OS for a free port (tests)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f'expected HOST:PORT like 127.0.0.1:4317, got "{value}"')
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def _convert(path: str, name: str, default: Any, raw: Any, problems: list[str]) -> Any:
    if name in _DURATION_FIELDS:
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return float(raw)
        try:
            return parse_duration(str(raw))
        except ValueError as e:
            problems.append(f"{path}: {e}")
            return default
    if name in _SIZE_FIELDS:
        try:
            return parse_bytes(raw)
        except ValueError as e:
            problems.append(f"{path}: {e}")
            return default
    if isinstance(default, list):
        if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
            problems.append(f"{path}: expected a list of strings, got {raw!r}")
            return default
        return list(raw)
    if isinstance(default, bool):
        if not isinstance(raw, bool):
            problems.append(f"{path}: expected true or false, got {raw!r}")
            return default
        return raw
    if isinstance(default, int):
        if isinstance(raw, bool) or not isinstance(raw, int):
            problems.append(f"{path}: expected an integer, got {raw!r}")
            return default
        return raw
    if isinstance(default, str):
        if not isinstance(raw, str):
            problems.append(f"{path}: expected a string, got {raw!r}")
            return default
        return raw
    return raw


def _build(cls: type, data: Any, path: str, problems: list[str]) -> Any:
    obj = cls()
    if data is None:
        return obj
    if not isinstance(data, dict):
        problems.append(f"{path or 'config'}: expected a mapping, got {type(data).__name__}")
        return obj
    known = {f.name: f for f in dataclasses.fields(cls)}
    for key, raw in data.items():
        sub = f"{path}.{key}" if path else str(key)
        if key not in known:
            problems.append(f"{sub}: unknown setting (expected one of {', '.join(sorted(known))})")
            continue
        default = getattr(obj, key)
        if dataclasses.is_dataclass(default):
            setattr(obj, key, _build(type(default), raw, sub, problems))
        else:
            setattr(obj, key, _convert(sub, key, default, raw, problems))
    return obj


def _check(cfg: Config, problems: list[str]) -> None:
    for name in ("otlp_grpc", "otlp_http", "http", "health"):
        try:
            parse_hostport(getattr(cfg.listen, name))
        except ValueError as e:
            problems.append(f"listen.{name}: {e}")
    if not valid_tenant(cfg.ingest.default_tenant):
        problems.append(f"ingest.default_tenant: expected a tenant id of letters, digits and !_.*'()-, "
                        f'got "{cfg.ingest.default_tenant}"')
    if not valid_tenant(cfg.selfmon.tenant):
        problems.append(f"selfmon.tenant: expected a tenant id of letters, digits and !_.*'()-, "
                        f'got "{cfg.selfmon.tenant}"')
    if cfg.selfmon.interval < 0:
        problems.append(f"selfmon.interval: expected zero or a positive duration, got {cfg.selfmon.interval}")
    if cfg.log_level not in _LOG_LEVELS:
        problems.append(f'log_level: expected one of {", ".join(sorted(_LOG_LEVELS))}, got "{cfg.log_level}"')
    positive = {
        "ingest.max_request_bytes": cfg.ingest.max_request_bytes,
        "wal.segment_size": cfg.wal.segment_size,
        "storage.retention": cfg.storage.retention,
        "storage.flush_interval": cfg.storage.flush_interval,
        "storage.row_group_rows": cfg.storage.row_group_rows,
    }
    for p, v in positive.items():
        if v <= 0:
            problems.append(f"{p}: expected a positive value, got {v}")
    if cfg.metrics.translation_strategy not in TRANSLATION_STRATEGIES:
        problems.append(f"metrics.translation_strategy: expected one of {', '.join(TRANSLATION_STRATEGIES)}, "
                        f'got "{cfg.metrics.translation_strategy}"')
    for p, v in {"metrics.lookback_delta": cfg.metrics.lookback_delta,
                 "metrics.query_timeout": cfg.metrics.query_timeout,
                 "metrics.query_max_samples": cfg.metrics.query_max_samples,
                 "metrics.max_active_series": cfg.metrics.max_active_series,
                 "logs.max_query_lines": cfg.logs.max_query_lines,
                 "logs.max_query_series": cfg.logs.max_query_series,
                 "logs.max_query_range": cfg.logs.max_query_range}.items():
        if v <= 0:
            problems.append(f"{p}: expected a positive value, got {v}")
    for p, v in {"metrics.out_of_order_time_window": cfg.metrics.out_of_order_time_window,
                 "metrics.max_samples_per_second": cfg.metrics.max_samples_per_second,
                 "logs.max_lines_per_second": cfg.logs.max_lines_per_second}.items():
        if v < 0:
            problems.append(f"{p}: expected zero or a positive value, got {v}")
    _check_alerting(cfg.alerting, problems)
    if cfg.pipeline:
        from lookout.pipeline.config import parse_pipelines

        parse_pipelines(cfg.pipeline, problems)
    if cfg.storage.head_max_size < cfg.storage.flush_size:
        problems.append(f"storage.head_max_size: expected at least storage.flush_size "
                        f"({cfg.storage.flush_size} bytes), got {cfg.storage.head_max_size}")


def _check_alerting(a: Alerting, problems: list[str]) -> None:
    if not valid_tenant(a.rule_tenant):
        problems.append(f'alerting.rule_tenant: expected a tenant id, got "{a.rule_tenant}"')
    if a.evaluation_interval <= 0:
        problems.append(f"alerting.evaluation_interval: expected a positive duration, got {a.evaluation_interval}")
    if not isinstance(a.external_labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in a.external_labels.items()):
        problems.append(f"alerting.external_labels: expected a mapping of label names to strings, "
                        f"got {a.external_labels!r}")
    if a.alertmanager_config and a.alertmanagers:
        problems.append("alerting.alertmanagers: set either alertmanager_config (the built-in notifier) "
                        "or alertmanagers (external ones), not both")
    if a.alertmanager_config:
        from lookout.alerting.amconfig import load_config as load_am

        try:
            load_am(a.alertmanager_config)
        except Exception as e:  # ConfigError names the path inside the file; OSError the file
            problems.append(f"alerting.alertmanager_config: {a.alertmanager_config}: {e}")
    if a.rule_files:
        from lookout.alerting.rulefile import RuleFileError, load_rule_files

        try:
            load_rule_files(list(a.rule_files))
        except RuleFileError as e:
            problems += [f"alerting.rule_files: {p}" for p in e.problems]


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Load and validate; raise ConfigError listing every problem. ``overrides`` maps dotted
    paths (``listen.http``) to values, as the CLI flags give them."""
    problems: list[str] = []
    data: Any = {}
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise ConfigError([f"{path}: cannot read: {e.strerror}"]) from e
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
            raise ConfigError([f"{path}: invalid YAML{where}: {getattr(e, 'problem', e)}"]) from e
    if not isinstance(data, dict):
        raise ConfigError([f"{path}: expected a mapping at the top level, got {type(data).__name__}"])
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {}) if isinstance(node.get(p), dict) or p not in node else node[p]
        node[leaf] = value
    cfg = _build(Config, data, "", problems)
    _check(cfg, problems)
    if problems:
        raise ConfigError(problems)
    return cfg
