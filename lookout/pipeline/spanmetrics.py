"""``spanmetrics``: RED metrics from every span, as Tempo's metrics-generator span-metrics
processor names and labels them, so Grafana's Tempo data source (service map, "RED" tables,
APM dashboards) works against Lookout's own Prometheus API unchanged.

Series (cumulative, per tenant)::

    traces_spanmetrics_calls_total{service, span_name, span_kind, status_code[, status_message], <dims>}
    traces_spanmetrics_latency_bucket{..., le} / _sum / _count      (seconds)

It runs in the trace consumer on every span *before* tail sampling, which is what keeps rates
and error ratios exact however few traces are stored; exemplars are published only for traces
the sampler kept (a link to a dropped trace would be dead).

Config (Tempo's keys; defaults are Tempo's)::

    spanmetrics:
      histogram_buckets: [0.002, 0.004, ..., 16.384]   # prometheus.ExponentialBuckets(0.002, 2, 14)
      intrinsic_dimensions: {service: true, span_name: true, span_kind: true,
                             status_code: true, status_message: false}
      dimensions: [http.method, deployment.environment]  # resource first, then span attributes
      dimension_mappings: [{name: env_ns, source_labels: [deployment.environment, k8s.namespace.name], join: "/"}]
      external_labels: {source: lookout}
      max_series: 10000                                  # per tenant; beyond it new label sets are dropped

Not supported (an error, not silently ignored): ``filter_policies``, ``span_multiplier_key``,
``enable_target_info``, ``subprocessors`` (the size counter), native histograms.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lookout.pipeline.series import (
    CodedColumn,
    KeptFn,
    LabelColumn,
    SeriesBudget,
    SeriesFamily,
    SeriesSample,
    attr_values,
    end_ms,
    exponential_buckets,
    parse_buckets,
    parse_external_labels,
    sanitize_label_name,
    string_column,
)
from lookout.pipeline.settings import Settings
from lookout.pipeline.stats import ProcessorStats

CALLS = "traces_spanmetrics_calls_total"
LATENCY = "traces_spanmetrics_latency"
DEFAULT_BUCKETS = exponential_buckets(0.002, 2, 14)  # 0.002 .. 16.384, Tempo's default
INTRINSICS = ("service", "span_name", "span_kind", "status_code", "status_message")
_INTRINSIC_DEFAULTS = {"service": True, "span_name": True, "span_kind": True, "status_code": True,
                       "status_message": False}

_KIND_NAMES = ["SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER", "SPAN_KIND_CLIENT",
               "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER"]
_STATUS_NAMES = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"]


def _enum_table(names: list[str]) -> pa.Array:
    """Names for int8 codes shifted by 128; unknown numbers print as the number, like Go's
    protobuf ``String()`` of an unknown enum value."""
    return pa.array([names[c] if 0 <= c < len(names) else str(c) for c in range(-128, 128)], pa.string())


KIND_TABLE = _enum_table(_KIND_NAMES)
STATUS_TABLE = _enum_table(_STATUS_NAMES)


def enum_column(table: pa.Table, name: str, names: pa.Array) -> CodedColumn:
    col = table.column(name)
    codes = col.to_numpy().astype(np.int64) if col.null_count == 0 else \
        col.fill_null(0).to_numpy().astype(np.int64)
    return CodedColumn(codes + 128, names)


@dataclass(slots=True)
class DimensionMapping:
    label: str
    source_labels: list[str]
    join: str


@dataclass(slots=True)
class SpanMetricsConfig:
    histogram_buckets: list[float] = field(default_factory=lambda: list(DEFAULT_BUCKETS))
    intrinsic_dimensions: dict[str, bool] = field(default_factory=lambda: dict(_INTRINSIC_DEFAULTS))
    dimensions: list[str] = field(default_factory=list)  # attribute keys as written
    dimension_mappings: list[DimensionMapping] = field(default_factory=list)
    external_labels: dict[str, str] = field(default_factory=dict)
    max_series: int = 10_000

    def label_names(self) -> list[str]:
        """Intrinsics in Tempo's order, then dimensions, then mappings (sanitized; a dimension
        that collides with an intrinsic gets Tempo's ``__`` prefix)."""
        names = [d for d in INTRINSICS if self.intrinsic_dimensions[d]]
        names += [dimension_label(d) for d in self.dimensions]
        names += [dimension_label(m.label) for m in self.dimension_mappings]
        return names


def dimension_label(key: str) -> str:
    """Tempo's ``sanitizeLabelNameWithCollisions``."""
    name = sanitize_label_name(key)
    return "__" + name if name in INTRINSICS else name


def parse_spanmetrics_config(raw: dict | None, path: str, problems: list[str]) -> SpanMetricsConfig | None:
    """Validate a ``spanmetrics`` mapping; every problem is appended as ``path.key: message``."""
    before = len(problems)
    s = Settings(raw, path, problems)
    cfg = SpanMetricsConfig()
    cfg.histogram_buckets = parse_buckets(s.any("histogram_buckets"), f"{path}.histogram_buckets", problems,
                                          DEFAULT_BUCKETS)
    intr = s.any("intrinsic_dimensions")
    if intr is not None:
        if not isinstance(intr, dict):
            s.bad("intrinsic_dimensions", f"expected a mapping of dimension to true/false, got {intr!r}")
        else:
            for k, v in intr.items():
                if k not in INTRINSICS:
                    s.bad(f"intrinsic_dimensions.{k}",
                          f"{k} is not a valid intrinsic dimension (expected one of {', '.join(INTRINSICS)})")
                elif not isinstance(v, bool):
                    s.bad(f"intrinsic_dimensions.{k}", f"expected true or false, got {v!r}")
                else:
                    cfg.intrinsic_dimensions[k] = v
    cfg.dimensions = s.strings("dimensions")
    maps = s.any("dimension_mappings")
    if maps is not None:
        if not isinstance(maps, list):
            s.bad("dimension_mappings", f"expected a list of {{name, source_labels, join}}, got {maps!r}")
        else:
            for i, m in enumerate(maps):
                mp = Settings(m, f"{path}.dimension_mappings[{i}]", problems)
                name = mp.string("name")
                sources = mp.strings("source_labels")
                join = mp.string("join", "") or ""
                mp.done()
                if not name:
                    mp.bad("name", "required: the label to create")
                elif not sources:
                    mp.bad("source_labels", "required: the attributes whose values are joined")
                else:
                    cfg.dimension_mappings.append(DimensionMapping(name, sources, join))
    cfg.external_labels = parse_external_labels(s.any("external_labels"), f"{path}.external_labels", problems)
    cfg.max_series = s.integer("max_series", cfg.max_series)
    if cfg.max_series <= 0:
        s.bad("max_series", f"expected a positive integer, got {cfg.max_series}")
    s.done()
    names = cfg.label_names()
    seen: set[str] = set()
    for n in names:
        if n in seen:
            problems.append(f'{path}.dimensions: two dimensions map to the same label "{n}"')
        seen.add(n)
    for k in cfg.external_labels:
        if k in seen:
            problems.append(f'{path}.external_labels.{k}: collides with a span metrics label')
    return cfg if len(problems) == before else None


def joined_mapping(table: pa.Table, m: DimensionMapping) -> pa.Array:
    """Tempo's dimension mapping: the present, non-empty source values joined by ``join``."""
    acc: pa.Array | None = None
    for src in m.source_labels:
        vals, _ = attr_values(table, src)
        if acc is None:
            acc = vals
            continue
        empty_acc = pc.equal(acc, "")
        empty_val = pc.equal(vals, "")
        both = pc.binary_join_element_wise(acc, vals, m.join)
        acc = pc.if_else(empty_val, acc, pc.if_else(empty_acc, vals, both))
    assert acc is not None
    return acc


class SpanMetrics:
    """Cumulative span metrics per tenant. ``observe`` and ``collect`` may run on different
    threads (consumer and remote-write pusher): one lock guards the state."""

    def __init__(self, cfg: SpanMetricsConfig, stats: ProcessorStats) -> None:
        self.cfg, self.stats = cfg, stats
        self._labels = cfg.label_names()
        self._families: dict[str, SeriesFamily] = {}
        self._lock = threading.Lock()

    def _family(self, tenant: str) -> SeriesFamily:
        fam = self._families.get(tenant)
        if fam is None:
            fam = SeriesFamily(self._labels, [CALLS], [(LATENCY, self.cfg.histogram_buckets)],
                               SeriesBudget(self.cfg.max_series))
            self._families[tenant] = fam
        return fam

    def label_columns(self, table: pa.Table) -> list[LabelColumn]:
        cfg = self.cfg
        cols: list[LabelColumn] = []
        intr = cfg.intrinsic_dimensions
        if intr["service"]:
            cols.append(string_column(table, "service_name"))
        if intr["span_name"]:
            cols.append(string_column(table, "name"))
        if intr["span_kind"]:
            cols.append(enum_column(table, "kind", KIND_TABLE))
        if intr["status_code"]:
            cols.append(enum_column(table, "status_code", STATUS_TABLE))
        if intr["status_message"]:
            cols.append(string_column(table, "status_message"))
        for d in cfg.dimensions:
            cols.append(attr_values(table, d)[0])
        for m in cfg.dimension_mappings:
            cols.append(joined_mapping(table, m))
        return cols

    def observe(self, tenant: str, table: pa.Table) -> None:
        """Count every span of ``table`` (vectorized; Python runs once per distinct label set)."""
        n = table.num_rows
        if n == 0:
            return
        cols = self.label_columns(table)
        dur = table.column("duration_nano").to_numpy()
        latency = np.maximum(dur, 0) / 1e9  # Tempo: end before start counts as 0
        tids = table.column("trace_id").combine_chunks()
        sids = table.column("span_id").combine_chunks()
        t_ms = end_ms(table)
        with self._lock:
            fam = self._family(tenant)
            sid = fam.resolve(cols, n)
            dropped = int(np.count_nonzero(sid < 0))
            if dropped:
                self.stats.add("series_dropped_spans", dropped, reason="max_series")
            fam.add(CALLS, sid)
            fam.observe(LATENCY, sid, latency, tids, sids, t_ms)
        self.stats.add("spans_observed", n)

    def collect(self, tenant: str, kept: KeptFn) -> list[SeriesSample]:
        with self._lock:
            fam = self._families.get(tenant)
            if fam is None:
                return []
            return fam.collect(kept, self.cfg.external_labels)

    def tenants(self) -> list[str]:
        with self._lock:
            return sorted(self._families)

    def series_count(self, tenant: str) -> int:
        with self._lock:
            fam = self._families.get(tenant)
            return len(fam) if fam else 0


def build(name: str, raw: Any, *, signal: str, path: str, problems: list[str]) -> SpanMetrics | None:
    """The pipeline factory (see ``lookout/pipeline/processor.py``)."""
    cfg = parse_spanmetrics_config(raw, path, problems)
    return None if cfg is None else SpanMetrics(cfg, ProcessorStats(signal, name))
