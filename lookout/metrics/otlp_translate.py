"""OTLP ``ExportMetricsServiceRequest`` bytes → :class:`MetricBatch`, as Prometheus 3 does it.

Follows Prometheus' OTLP receiver (``storage/remote/otlptranslator/prometheusremotewrite`` with
``github.com/prometheus/otlptranslator`` for names, see :mod:`lookout.metrics.naming`):

- gauge → gauge; sum: monotonic → counter (``_total``), non-monotonic → gauge;
- histogram → ``_bucket{le}`` (cumulative, ``le="+Inf"`` = count), ``_sum`` (when set), ``_count``;
- summary → ``{quantile}`` series plus ``_sum`` and ``_count``;
- exponential histograms would be native histograms, which the store cannot hold yet: their data
  points are refused under :data:`REFUSED_EXPONENTIAL` (counted, never silently dropped);
- labels: data point attributes (colliding escaped names joined with ``;`` in key order),
  promoted resource attributes (never overriding attributes), ``otel_scope_*`` when scope
  metadata is promoted, then ``job`` (``service.namespace/service.name``) and ``instance``
  (``service.instance.id``), then ``__name__``/``le``/``quantile``;
- a ``target_info`` gauge (value 1) per resource with its non-identifying attributes, sampled
  from the resource's earliest to latest data point every ``lookback_delta / 2``;
- ``NO_RECORDED_VALUE`` → the StaleNaN marker; times ns → ms (truncating);
- exemplars keep their filtered attributes plus ``trace_id``/``span_id`` (lowercase hex); a
  histogram exemplar goes to the first bucket whose bound is >= its value;
- delta sums/histograms go through a caller-owned :class:`DeltaToCumulative` (Prometheus 3 by
  default refuses them); without one they are refused under :data:`REFUSED_DELTA`.

Speed: ptars decodes the protobuf into Arrow, then numpy/pyarrow compute build every label,
sample and exemplar. Python runs per resource, scope, metric and distinct attribute key, never
per data point on the gauge/sum/histogram/summary paths (only on collisions of escaped attribute
names and non-scalar attribute values, which are rare, and per distinct delta series for state).
"""

from __future__ import annotations

import base64
import json
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import ptars
import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from lookout.metrics.batch import EXEMPLAR_SCHEMA, LABEL, LABELS, MetricBatch, MetricMetadata
from lookout.metrics.model import METRIC_NAME, STALE_NAN
from lookout.metrics.naming import MetricKind, NameError_, TranslationStrategy, label_name, metric_name, unit_name
from lookout.metrics.remote_write import canonical_series, list_offsets, parents_from_offsets, samples_table
from lookout.otlp.errors import OtlpDecodeError

REFUSED_EXPONENTIAL = "exponential histograms are not supported (native histograms are not stored yet)"
REFUSED_DELTA = "delta temporality is not accepted (no delta-to-cumulative conversion configured)"
REFUSED_TEMPORALITY = "aggregation temporality unspecified"
REFUSED_METRIC_NAME = "metric name normalizes to an empty or invalid name"
REFUSED_LABEL_NAME = "attribute name normalizes to an empty or invalid label name"
REFUSED_EMPTY = "metric has no data type set"
REFUSED_DELTA_OUT_OF_ORDER = "delta point not newer than the last one converted for its series"
REFUSED_DELTA_OVERLAP = "delta point starts before the end of the previous one for its series"

_DELTA, _CUMULATIVE = 1, 2
_NO_RECORDED_VALUE = 1
_NS_PER_MS = 1_000_000
_SERVICE_NAME, _SERVICE_NAMESPACE, _SERVICE_INSTANCE = "service.name", "service.namespace", "service.instance.id"
_IDENTIFYING = (_SERVICE_NAME, _SERVICE_NAMESPACE, _SERVICE_INSTANCE)
# label precedence, lowest first (a higher one replaces a lower one with the same name)
_P_PROMOTED, _P_ATTR, _P_SCOPE, _P_TARGET = 0, 1, 2, 3


@dataclass
class TranslationOptions:
    """The knobs of Prometheus' ``otlp:`` config section that change what is stored."""

    translation_strategy: TranslationStrategy = TranslationStrategy.UNDERSCORE_ESCAPING_WITH_SUFFIXES
    promote_resource_attributes: list[str] = field(default_factory=list)
    keep_identifying_resource_attributes: bool = False  # also keep service.* in target_info
    promote_scope_metadata: bool = False  # otel_scope_name/_version/_schema_url/_<attr> labels
    label_name_underscore_sanitization: bool = True  # "_foo" → "key_foo"
    disable_target_info: bool = False
    lookback_delta_ms: int = 300_000  # target_info is sampled every lookback_delta / 2
    namespace: str = ""  # metric name prefix


@dataclass
class TranslateResult:
    batch: MetricBatch
    refused: dict[str, int]  # reason → data points not stored


def _add(refused: dict[str, int], reason: str, count: int) -> None:
    if count:
        refused[reason] = refused.get(reason, 0) + int(count)


# --------------------------------------------------------------------------------------------
# Delta → cumulative
# --------------------------------------------------------------------------------------------


class DeltaToCumulative:
    """Running totals that turn delta sums/histograms into cumulative series.

    The caller keeps one per tenant across requests. State is keyed by the output series' label
    set (each histogram bucket, ``_sum`` and ``_count`` is its own series) and holds the
    stream's start time, the last converted point's time and the running total. At most
    ``max_series`` streams are tracked; the least recently used is forgotten first (its next
    delta then starts a new cumulative stream, which PromQL's ``rate`` reads as a reset).

    A delta point whose time is not after the stream's last point (a duplicate or out-of-order
    delivery) or whose start lies before that time (overlap) cannot be added without double
    counting: it is refused with a reason. Within one request the checks compare each point with
    the previous one of its series in time order.
    """

    def __init__(self, max_series: int = 100_000) -> None:
        self.max_series = max_series
        self._state: OrderedDict[bytes, tuple[int, int, float]] = OrderedDict()  # start, last, total
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._state)

    def convert(
        self, keys: Sequence[bytes], start_ms: np.ndarray, t_ms: np.ndarray, v: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Delta samples → (cumulative values, accepted mask, refusal code per sample).

        ``keys[i]`` identifies sample ``i``'s series. Codes: 0 accepted, 1 out of order, 2 overlap.
        Stale markers (NaN) pass through without touching the state.
        """
        n = len(keys)
        out = np.array(v, np.float64, copy=True)
        code = np.zeros(n, np.int8)
        if n == 0:
            return out, np.ones(0, bool), code
        uniq: dict[bytes, int] = {}
        kid = np.fromiter((uniq.setdefault(k, len(uniq)) for k in keys), np.int64, n)
        stale = np.isnan(out)
        live = np.flatnonzero(~stale)
        order = live[np.lexsort((t_ms[live], kid[live]))]
        if order.size:
            self._convert_sorted(list(uniq), kid, order, start_ms, t_ms, out, code)
        return out, code == 0, code

    def _convert_sorted(
        self,
        ukeys: list[bytes],
        kid: np.ndarray,
        order: np.ndarray,
        start_ms: np.ndarray,
        t_ms: np.ndarray,
        out: np.ndarray,
        code: np.ndarray,
    ) -> None:
        k, t, s, v = kid[order], t_ms[order], start_ms[order], out[order]
        first = np.ones(len(order), bool)
        first[1:] = k[1:] != k[:-1]
        group_starts = np.flatnonzero(first)
        # previous time: within the group the previous point, for a group's first point the state
        prev_t = np.empty(len(order), np.int64)
        prev_t[1:] = t[:-1]
        base = np.zeros(len(order), np.float64)
        stream_start = s.copy()
        gk = k[group_starts]
        for gi, pos in enumerate(group_starts):  # per distinct series: the state lookup
            state = self._state.get(ukeys[gk[gi]])
            if state is None:
                prev_t[pos] = np.iinfo(np.int64).min
            else:
                prev_t[pos], base[pos], stream_start[pos] = state[1], state[2], state[0]
        c = np.where(t <= prev_t, 1, np.where(s < prev_t, 2, 0)).astype(np.int8)
        ok = c == 0
        contrib = np.where(ok, v, 0.0) + base
        group_of = np.cumsum(first) - 1
        csum = np.cumsum(contrib)
        offset = np.concatenate([[0.0], csum])[group_starts][group_of]
        total = csum - offset
        out[order] = np.where(ok, total, out[order])
        code[order] = c
        last = np.concatenate([group_starts[1:], [len(order)]]) - 1
        for gi in range(len(group_starts)):
            idx = np.flatnonzero(ok[group_starts[gi] : last[gi] + 1])
            if idx.size == 0:
                continue
            j = group_starts[gi] + idx[-1]
            key = ukeys[gk[gi]]
            self._state[key] = (int(stream_start[group_starts[gi]]), int(t[j]), float(total[j]))
            self._state.move_to_end(key)
        while len(self._state) > self.max_series:
            self._state.popitem(last=False)
            self.evicted += 1


# --------------------------------------------------------------------------------------------
# Small vectorized helpers
# --------------------------------------------------------------------------------------------


@cache
def _handler() -> ptars._lib.MessageHandler:
    pool = ptars.HandlerPool([ExportMetricsServiceRequest.DESCRIPTOR.file])
    return pool.get_for_message(ExportMetricsServiceRequest.DESCRIPTOR)


def _gather_ranges(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ranges ``[starts[i], starts[i]+lengths[i])``: (owner i, index) of every element."""
    lengths = np.asarray(lengths, np.int64)
    owner = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    if owner.size == 0:
        return owner, owner
    out_start = np.cumsum(lengths) - lengths
    idx = np.arange(owner.size, dtype=np.int64) - out_start[owner] + np.asarray(starts, np.int64)[owner]
    return owner, idx


def format_float(x: float) -> str:
    """Go's ``strconv.FormatFloat(x, 'f', -1, 64)``: shortest exact digits, never an exponent."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return np.format_float_positional(x, trim="-")


def _format_floats(values: np.ndarray) -> pa.Array:
    """Vectorized over distinct values: bounds and quantiles repeat a lot."""
    if len(values) == 0:
        return pa.array([], pa.string())
    uniq, inv = np.unique(values, return_inverse=True)
    return pa.array([format_float(float(u)) for u in uniq], pa.string()).take(pa.array(inv))


def _ns_to_ms(arr: pa.Array) -> np.ndarray:
    return (arr.to_numpy(zero_copy_only=False).astype(np.uint64) // np.uint64(_NS_PER_MS)).astype(np.int64)


def _number_value(double: pa.Array, integer: pa.Array) -> np.ndarray:
    """``as_double`` when set, else ``as_int`` as float, else 0 (Prometheus' zero value)."""
    d = double.fill_null(0.0).to_numpy(zero_copy_only=False)
    i = integer.fill_null(0).to_numpy(zero_copy_only=False).astype(np.float64)
    return np.where(double.is_valid().to_numpy(zero_copy_only=False), d, i)


def _hex(ids: pa.Array, size: int) -> pa.Array:
    """Lowercase hex of binary ids of exactly ``size`` bytes; others (empty, wrong) give ""."""
    n = len(ids)
    ok = (pc.binary_length(ids).to_numpy(zero_copy_only=False) == size) if n else np.zeros(0, bool)
    good = ids.filter(pa.array(ok)).cast(pa.binary(size))
    raw = np.frombuffer(good.buffers()[1], np.uint8, len(good) * size, good.offset * size).reshape(-1, size)
    digits = np.frombuffer(b"0123456789abcdef", np.uint8)
    text = np.empty((len(good), 2 * size), np.uint8)
    text[:, 0::2] = digits[raw >> 4]
    text[:, 1::2] = digits[raw & 15]
    lengths = np.where(ok, 2 * size, 0)
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text.tobytes()))


def _plain(v: AnyValue) -> object:
    """A upb AnyValue as the plain JSON-able value ``pcommon.Value.AsString`` would print."""
    which = v.WhichOneof("value")
    if which == "array_value":
        return [_plain(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _plain(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return getattr(v, which) if which else None


def _go_value_string(value: dict | None) -> str:
    """``pcommon.Value.AsString`` for the rare non-scalar attribute values (JSON, base64).

    ptars hands nested AnyValues over serialized, so they are parsed with upb here.
    """
    if not value:
        return ""
    if value.get("bytes_value") is not None:
        return base64.b64encode(value["bytes_value"]).decode()
    if value.get("array_value") is not None:
        out: object = [_plain(AnyValue.FromString(x)) for x in value["array_value"]["values"]]
    elif value.get("kvlist_value") is not None:
        kvs = [KeyValue.FromString(x) for x in value["kvlist_value"]["values"]]
        out = {kv.key: _plain(kv.value) for kv in kvs}
    else:
        return ""
    return json.dumps(out, separators=(",", ":"))


def _any_to_string(values: pa.StructArray) -> pa.Array:
    """AnyValue structs → label value strings, vectorized for the scalar kinds."""
    n = len(values)
    if n == 0:
        return pa.array([], pa.string())
    sv = pc.struct_field(values, "string_value")
    iv = pc.struct_field(values, "int_value")
    bv = pc.struct_field(values, "bool_value")
    dv = pc.struct_field(values, "double_value")
    parts = [sv, iv.cast(pa.string()), pc.if_else(bv, "true", "false")]
    dvalid = dv.is_valid().to_numpy(zero_copy_only=False)
    if dvalid.any():
        idx = np.flatnonzero(dvalid)
        strs = np.full(n, None, object)
        strs[idx] = _format_floats(dv.take(idx).to_numpy(zero_copy_only=False)).to_pylist()
        parts.append(pa.array(strs, pa.string()))
    out = pc.coalesce(*parts)
    missing = np.flatnonzero(~out.is_valid().to_numpy(zero_copy_only=False))
    if missing.size:  # bytes/array/kvlist/empty: rare, Python per value
        strs = out.to_numpy(zero_copy_only=False).astype(object)
        for i, v in zip(missing, values.take(missing).to_pylist(), strict=True):
            strs[i] = _go_value_string(v)
        out = pa.array(strs, pa.string())
    return out


# --------------------------------------------------------------------------------------------
# The translator
# --------------------------------------------------------------------------------------------


@dataclass
class _Metric:
    """Per-metric decisions, made in Python once per metric."""

    names: dict[str, int]  # variant ("", "_bucket", "_sum", "_count") → index into name table
    delta: bool
    refused: str | None


@dataclass
class _Rows:
    """Output samples before series resolution; one row = one sample of one series."""

    point: list[np.ndarray] = field(default_factory=list)  # global point index
    name: list[np.ndarray] = field(default_factory=list)  # index into the name table
    extra: list[np.ndarray] = field(default_factory=list)  # 0 none, 1 le, 2 quantile
    extra_value: list[pa.Array] = field(default_factory=list)
    t: list[np.ndarray] = field(default_factory=list)
    v: list[np.ndarray] = field(default_factory=list)
    delta: list[np.ndarray] = field(default_factory=list)
    start: list[np.ndarray] = field(default_factory=list)

    def add(self, point, name, extra, extra_value, t, v, delta, start) -> int:
        first = sum(len(p) for p in self.point)
        n = len(point)
        self.point.append(np.asarray(point, np.int64))
        self.name.append(np.broadcast_to(np.asarray(name, np.int64), (n,)).copy())
        self.extra.append(np.full(n, extra, np.int8))
        self.extra_value.append(extra_value if extra_value is not None else pa.nulls(n, pa.string()))
        self.t.append(np.asarray(t, np.int64))
        self.v.append(np.asarray(v, np.float64))
        self.delta.append(np.asarray(delta, bool))
        self.start.append(np.asarray(start, np.int64))
        return first


@dataclass
class _Points:
    """Data points of one kind, flattened across metrics, already filtered to accepted ones."""

    arr: pa.StructArray
    metric: np.ndarray  # metric index per point
    gid: np.ndarray  # global point index (into the label tables)


class OtlpMetricsTranslator:
    """Translate OTLP metrics requests; keep one per tenant (``delta`` state is per tenant)."""

    def __init__(self, options: TranslationOptions, delta: DeltaToCumulative | None = None) -> None:
        self.options = options
        self.delta = delta
        self._strategy = TranslationStrategy(options.translation_strategy)
        self._label_cache: dict[str, str | None] = {}
        self._name_cache: dict[tuple[str, str, MetricKind], str | None] = {}

    # -- names ---------------------------------------------------------------------------

    def _label(self, key: str) -> str | None:
        """Escaped label name of an attribute key, or None when it is invalid (cached)."""
        hit = self._label_cache.get(key, "")
        if hit != "":
            return hit
        try:
            out: str | None = label_name(key, self._strategy, self.options.label_name_underscore_sanitization)
        except NameError_:
            out = None
        if len(self._label_cache) > 65_536:
            self._label_cache.clear()
        self._label_cache[key] = out
        return out

    def _metric_name(self, name: str, unit: str, kind: MetricKind) -> str | None:
        key = (name, unit, kind)
        if key not in self._name_cache:
            try:
                self._name_cache[key] = metric_name(name, unit, kind, self._strategy, self.options.namespace)
            except NameError_:
                self._name_cache[key] = None
            if len(self._name_cache) > 16_384:
                self._name_cache.clear()
                return self._metric_name(name, unit, kind)
        return self._name_cache[key]

    # -- entry point ---------------------------------------------------------------------

    def translate(self, payload: bytes) -> TranslateResult:
        """One serialized ``ExportMetricsServiceRequest`` → batch + refused data point counts.

        Raises :class:`OtlpDecodeError` when the payload is not valid protobuf.
        """
        try:
            record = _handler().list_to_record_batch([payload])
        except Exception as exc:  # ptars raises plain ValueError/RuntimeError on bad input
            raise OtlpDecodeError(f"invalid protobuf ExportMetricsServiceRequest: {exc}") from exc
        return _Translation(self, record.column(0)).run()


class _Translation:
    """The state of translating one request (split out of the translator to keep it small)."""

    def __init__(self, owner: OtlpMetricsTranslator, column: pa.Array) -> None:
        self.t = owner
        self.opts = owner.options
        self.refused: dict[str, int] = {}
        self.names: list[str] = []
        self.metadata: dict[str, MetricMetadata] = {}
        rm = pc.list_flatten(column)
        self.rm = rm
        sm_lists = rm.field("scope_metrics")
        self.sm = pc.list_flatten(sm_lists)
        self.sm_res = parents_from_offsets(list_offsets(sm_lists))
        m_lists = self.sm.field("metrics")
        self.metrics = pc.list_flatten(m_lists)
        self.m_scope = parents_from_offsets(list_offsets(m_lists))
        self.m_res = self.sm_res[self.m_scope]

    # -- per metric ----------------------------------------------------------------------

    def _name_id(self, name: str) -> int:
        self.names.append(name)
        return len(self.names) - 1

    def _classify(self) -> list[_Metric]:
        """Names, metadata and refusals, once per metric."""
        out = []
        ms = self.metrics
        cols = {k: ms.field(k).to_pylist() for k in ("name", "description", "unit")}
        kinds = {k: ms.field(k).is_valid().to_numpy(zero_copy_only=False) for k in _KIND_FIELDS}
        sum_temp = pc.struct_field(ms.field("sum"), "aggregation_temporality").fill_null(0).to_numpy(False)
        sum_mono = pc.struct_field(ms.field("sum"), "is_monotonic").fill_null(False).to_numpy(False)
        hist_temp = pc.struct_field(ms.field("histogram"), "aggregation_temporality").fill_null(0).to_numpy(False)
        for i in range(len(ms)):
            name, unit, help_ = cols["name"][i], cols["unit"][i], cols["description"][i]
            temporality = 0
            if kinds["gauge"][i]:
                kind, ptype = MetricKind.GAUGE, "gauge"
            elif kinds["sum"][i]:
                mono = bool(sum_mono[i])
                kind = MetricKind.MONOTONIC_COUNTER if mono else MetricKind.NON_MONOTONIC_COUNTER
                ptype, temporality = ("counter" if mono else "gauge"), int(sum_temp[i])
            elif kinds["histogram"][i]:
                kind, ptype, temporality = MetricKind.HISTOGRAM, "histogram", int(hist_temp[i])
            elif kinds["summary"][i]:
                kind, ptype = MetricKind.SUMMARY, "summary"
            elif kinds["exponential_histogram"][i]:
                out.append(_Metric({}, False, REFUSED_EXPONENTIAL))
                continue
            else:
                out.append(_Metric({}, False, REFUSED_EMPTY))
                continue
            base = self.t._metric_name(name, unit, kind)
            reason = None
            if base is None:
                reason = REFUSED_METRIC_NAME
            elif kind not in (MetricKind.GAUGE, MetricKind.SUMMARY) and temporality not in (_DELTA, _CUMULATIVE):
                reason = REFUSED_TEMPORALITY
            elif temporality == _DELTA and self.t.delta is None:
                reason = REFUSED_DELTA
            if reason:
                out.append(_Metric({}, False, reason))
                continue
            variants = ("", "_bucket", "_sum", "_count") if kind is MetricKind.HISTOGRAM else ("",)
            if kind is MetricKind.SUMMARY:
                variants = ("", "_sum", "_count")
            out.append(_Metric({v: self._name_id(base + v) for v in variants}, temporality == _DELTA, None))
            if base not in self.metadata:
                self.metadata[base] = MetricMetadata(base, ptype, unit_name(unit, self.t._strategy), help_)
        return out

    # -- data points ---------------------------------------------------------------------

    def _points(self, kind: str, ok_metric: np.ndarray, first_gid: int) -> _Points:
        lists = pc.struct_field(self.metrics.field(kind), "data_points")
        arr = pc.list_flatten(lists)
        metric = parents_from_offsets(list_offsets(lists))
        accepted = ok_metric[metric] if len(metric) else np.zeros(0, bool)
        if not accepted.all():
            idx = np.flatnonzero(accepted)
            arr, metric = arr.take(idx), metric[idx]
        return _Points(arr, metric, first_gid + np.arange(len(metric), dtype=np.int64))

    def run(self) -> TranslateResult:
        metrics = self._classify()
        ok_metric = np.array([m.refused is None for m in metrics], bool)
        for kind in _KIND_FIELDS:
            counts = pc.list_value_length(pc.struct_field(self.metrics.field(kind), "data_points"))
            counts = counts.fill_null(0).to_numpy(zero_copy_only=False)
            for i, m in enumerate(metrics):
                if m.refused and counts[i]:
                    _add(self.refused, m.refused, counts[i])
        kinds: dict[str, _Points] = {}
        gid = 0
        for kind in ("gauge", "sum", "histogram", "summary"):
            kinds[kind] = self._points(kind, ok_metric, gid)
            gid += len(kinds[kind].metric)
        npoints = gid
        point_metric = np.concatenate([kinds[k].metric for k in kinds]) if npoints else np.zeros(0, np.int64)
        point_time = np.concatenate([_ns_to_ms(kinds[k].arr.field("time_unix_nano")) for k in kinds])
        base = _BaseLabels(self, kinds, point_metric, npoints)
        rows = _Rows()
        ex_parts: list[tuple[np.ndarray, pa.StructArray]] = []
        self._number_rows(rows, kinds, metrics, ex_parts)
        hist_ex = self._histogram_rows(rows, kinds["histogram"], metrics)
        self._summary_rows(rows, kinds["summary"], metrics)
        return self._finish(rows, base, metrics, point_time, point_metric, ex_parts, hist_ex)

    def _number_rows(self, rows: _Rows, kinds: dict[str, _Points], metrics: list[_Metric], ex_parts: list) -> None:
        for kind in ("gauge", "sum"):
            pts = kinds[kind]
            if len(pts.metric) == 0:
                continue
            a = pts.arr
            v = _number_value(pc.struct_field(a, "as_double"), pc.struct_field(a, "as_int"))
            stale = (a.field("flags").to_numpy(zero_copy_only=False) & _NO_RECORDED_VALUE) != 0
            v = np.where(stale, STALE_NAN, v)
            name_of = self._variant_ids(metrics, "")
            delta = np.array([m.delta for m in metrics], bool)[pts.metric]
            first = rows.add(
                pts.gid, name_of[pts.metric], 0, None, _ns_to_ms(a.field("time_unix_nano")), v, delta,
                _ns_to_ms(a.field("start_time_unix_nano")),
            )
            ex_parts.append((first + np.arange(len(pts.gid)), a.field("exemplars")))

    def _variant_ids(self, metrics: list[_Metric], variant: str) -> np.ndarray:
        return np.array([m.names.get(variant, 0) for m in metrics] or [0], np.int64)

    def _histogram_rows(self, rows: _Rows, pts: _Points, metrics: list[_Metric]):
        """``_bucket`` (cumulative, ``+Inf`` = count), ``_count`` and ``_sum`` rows."""
        n = len(pts.metric)
        if n == 0:
            return None
        a = pts.arr
        t = _ns_to_ms(a.field("time_unix_nano"))
        start = _ns_to_ms(a.field("start_time_unix_nano"))
        stale = (a.field("flags").to_numpy(zero_copy_only=False) & _NO_RECORDED_VALUE) != 0
        delta = np.array([m.delta for m in metrics], bool)[pts.metric]
        bounds_l, counts_l = a.field("explicit_bounds"), a.field("bucket_counts")
        b_off, c_off = list_offsets(bounds_l), list_offsets(counts_l)
        nb = np.minimum(np.diff(b_off), np.diff(c_off))  # Prometheus uses the shorter of the two
        owner, cidx = _gather_ranges(c_off[:-1], nb)
        _, bidx = _gather_ranges(b_off[:-1], nb)
        counts = pc.list_flatten(counts_l).to_numpy(zero_copy_only=False).astype(np.uint64)[cidx]
        csum = np.cumsum(counts, dtype=np.uint64)
        starts = np.cumsum(nb) - nb
        before = np.concatenate([[np.uint64(0)], csum])[starts][owner] if owner.size else csum
        cumulative = (csum - before).astype(np.float64)
        bounds = pc.list_flatten(bounds_l).to_numpy(zero_copy_only=False)[bidx]
        count = a.field("count").to_numpy(zero_copy_only=False).astype(np.float64)
        # buckets of point i occupy rows [first + pos[i], first + pos[i] + nb[i]], the last being +Inf
        pos = np.cumsum(nb + 1) - (nb + 1)
        per_row_point = np.repeat(np.arange(n), nb + 1)
        is_inf = np.zeros(len(per_row_point), bool)
        is_inf[pos + nb] = True
        values = np.empty(len(per_row_point))
        values[~is_inf] = cumulative
        values[is_inf] = count
        le = np.empty(len(per_row_point))
        le[~is_inf] = bounds
        le[is_inf] = np.inf
        values = np.where(stale[per_row_point], STALE_NAN, values)
        first = rows.add(
            pts.gid[per_row_point], self._variant_ids(metrics, "_bucket")[pts.metric][per_row_point], 1,
            _format_floats(le), t[per_row_point], values, delta[per_row_point], start[per_row_point],
        )
        rows.add(
            pts.gid, self._variant_ids(metrics, "_count")[pts.metric], 0, None, t,
            np.where(stale, STALE_NAN, count), delta, start,
        )
        has_sum = pc.struct_field(a, "sum").is_valid().to_numpy(zero_copy_only=False)
        s_idx = np.flatnonzero(has_sum)
        sums = pc.struct_field(a, "sum").fill_null(0.0).to_numpy(zero_copy_only=False)
        rows.add(
            pts.gid[s_idx], self._variant_ids(metrics, "_sum")[pts.metric][s_idx], 0, None, t[s_idx],
            np.where(stale, STALE_NAN, sums)[s_idx], delta[s_idx], start[s_idx],
        )
        return first, pos, nb, b_off, bounds_l, a.field("exemplars")

    def _summary_rows(self, rows: _Rows, pts: _Points, metrics: list[_Metric]) -> None:
        n = len(pts.metric)
        if n == 0:
            return
        a = pts.arr
        t = _ns_to_ms(a.field("time_unix_nano"))
        stale = (a.field("flags").to_numpy(zero_copy_only=False) & _NO_RECORDED_VALUE) != 0
        no_delta = np.zeros(n, bool)
        zeros = np.zeros(n, np.int64)
        q_l = a.field("quantile_values")
        qp = parents_from_offsets(list_offsets(q_l))
        qv = pc.list_flatten(q_l)
        qvalues = np.where(stale[qp], STALE_NAN, qv.field("value").to_numpy(zero_copy_only=False))
        base_ids = self._variant_ids(metrics, "")[pts.metric]
        rows.add(
            pts.gid[qp], base_ids[qp], 2, _format_floats(qv.field("quantile").to_numpy(zero_copy_only=False)),
            t[qp], qvalues, no_delta[qp], zeros[qp],
        )
        for variant, col in (("_sum", "sum"), ("_count", "count")):
            v = a.field(col).to_numpy(zero_copy_only=False).astype(np.float64)
            rows.add(
                pts.gid, self._variant_ids(metrics, variant)[pts.metric], 0, None, t,
                np.where(stale, STALE_NAN, v), no_delta, zeros,
            )

    # -- assembling --------------------------------------------------------------------

    def _finish(self, rows, base, metrics, point_time, point_metric, ex_parts, hist_ex) -> TranslateResult:
        if not rows.point:
            rows.add(np.zeros(0, np.int64), 0, 0, None, np.zeros(0), np.zeros(0), np.zeros(0, bool), np.zeros(0))
        r_point = np.concatenate(rows.point)
        r_name = np.concatenate(rows.name)
        r_extra = np.concatenate(rows.extra)
        r_extra_value = pa.concat_arrays([x.cast(pa.string()) for x in rows.extra_value])
        r_t, r_v = np.concatenate(rows.t), np.concatenate(rows.v)
        r_delta, r_start = np.concatenate(rows.delta), np.concatenate(rows.start)
        # drop rows whose point carries an invalid attribute name (counted per point)
        bad_point = base.bad_point
        keep = ~bad_point[r_point] if len(r_point) else np.zeros(0, bool)
        _add(self.refused, REFUSED_LABEL_NAME, int(bad_point.sum()))
        nrows = len(r_point)
        # labels per row: the point's base labels (minus __name__/le/quantile), then the extras
        owner, idx = _gather_ranges(base.offsets[r_point], np.diff(base.offsets)[r_point])
        drop = base.is_name[idx] | (base.is_le[idx] & (r_extra[owner] == 1)) | (base.is_q[idx] & (r_extra[owner] == 2))
        owner, idx = owner[~drop], idx[~drop]
        has_extra = np.flatnonzero(r_extra != 0)
        extra_names = pa.array(["", "le", "quantile"]).take(pa.array(r_extra[has_extra]))
        ti_names, ti_values, ti_parents, ti_t = self._target_info(point_time, point_metric, nrows, keep)
        names = pa.concat_arrays(
            [base.names.take(pa.array(idx)), pa.array([METRIC_NAME] * nrows, pa.string()), extra_names, ti_names]
        )
        values = pa.concat_arrays(
            [
                base.values.take(pa.array(idx)),
                pa.array(self.names or [""], pa.string()).take(pa.array(r_name)),
                r_extra_value.take(pa.array(has_extra)),
                ti_values,
            ]
        )
        nti = len(ti_t)
        parents = np.concatenate([owner, np.arange(nrows), has_extra, ti_parents])
        series, ref, keys = canonical_series(names, values, parents, nrows + nti, lambda i: f"row {i}")
        all_t = np.concatenate([r_t, ti_t])
        all_v = np.concatenate([r_v, np.ones(nti)])
        keep = np.concatenate([keep, np.ones(nti, bool)])
        d_idx = np.flatnonzero(np.concatenate([r_delta, np.zeros(nti, bool)]) & keep)
        if d_idx.size:
            key_list = keys.take(pa.array(ref[d_idx])).to_pylist()
            new_v, ok, code = self.t.delta.convert(key_list, r_start[d_idx], all_t[d_idx], all_v[d_idx])
            all_v[d_idx] = new_v
            keep[d_idx[~ok]] = False
            for c, reason in ((1, REFUSED_DELTA_OUT_OF_ORDER), (2, REFUSED_DELTA_OVERLAP)):
                _add(self.refused, reason, len(np.unique(r_point[d_idx[code == c]])))
        sel = np.flatnonzero(keep)
        series, ref = _used_series(series, ref, sel)
        samples = samples_table(ref[sel], all_t[sel], all_v[sel])
        exemplars = self._exemplars(ex_parts, hist_ex, ref, keep)
        return TranslateResult(MetricBatch(series, samples, exemplars, list(self.metadata.values())), self.refused)

    def _target_info(self, point_time, point_metric, nrows, keep_rows):
        """target_info rows: labels (flat) and timestamps, per resource with a job or instance."""
        empty = (pa.array([], pa.string()), pa.array([], pa.string()), np.zeros(0, np.int64), np.zeros(0, np.int64))
        if self.opts.disable_target_info or len(point_time) == 0:
            return empty
        nres = len(self.rm)
        res_of_point = self.m_res[point_metric]
        lo = np.full(nres, np.iinfo(np.int64).max)
        hi = np.full(nres, np.iinfo(np.int64).min)
        np.minimum.at(lo, res_of_point, point_time)
        np.maximum.at(hi, res_of_point, point_time)
        names, values, parents, times = [], [], [], []
        step = max(self.opts.lookback_delta_ms // 2, 1)
        row = nrows
        for r in range(nres):
            if lo[r] > hi[r]:
                continue
            labels = self._target_info_labels(r)
            if labels is None:
                continue
            ts = list(range(int(lo[r]), int(hi[r]), step)) + [int(hi[r])]
            for tms in ts:
                for k, v in labels.items():
                    names.append(k)
                    values.append(v)
                    parents.append(row)
                times.append(tms)
                row += 1
        if times:
            self.metadata.setdefault("target_info", MetricMetadata("target_info", "gauge", "", "Target metadata"))
        return (
            pa.array(names, pa.string()),
            pa.array(values, pa.string()),
            np.array(parents, np.int64),
            np.array(times, np.int64),
        )

    def _target_info_labels(self, r: int) -> dict[str, str] | None:
        attrs = self.resource_attrs[r]
        if not any(k not in _IDENTIFYING for k in attrs):
            return None
        job, instance = _job_instance(attrs)
        if not job and not instance:
            return None
        keep_all = self.opts.keep_identifying_resource_attributes
        pairs = [(k, v) for k, v in attrs.items() if keep_all or k not in _IDENTIFYING]
        labels = self._escape_pairs(pairs)
        labels.update({"job": job, "instance": instance, METRIC_NAME: "target_info"})
        return labels

    def _escape_pairs(self, pairs: list[tuple[str, str]]) -> dict[str, str]:
        """Escape names; colliding names join values with ';' in original key order."""
        out: dict[str, str] = {}
        for k, v in sorted(pairs):
            name = self.t._label(k)
            if name is None:
                continue
            out[name] = out[name] + ";" + v if name in out else v
        return out

    def _exemplars(self, ex_parts, hist_ex, ref: np.ndarray, keep: np.ndarray) -> pa.Table:
        """Exemplars of number points (their own series) and histogram points (their bucket)."""
        tables = []
        for rows_of_point, ex_lists in ex_parts:
            tables.append(self._exemplar_table(ex_lists, rows_of_point, ref, keep, None))
        if hist_ex is not None:
            first, pos, nb, b_off, bounds_l, ex_lists = hist_ex
            tables.append(self._exemplar_table(ex_lists, (first, pos, nb, b_off, bounds_l), ref, keep, True))
        tables = [t for t in tables if t is not None and t.num_rows]
        return pa.concat_tables(tables) if tables else EXEMPLAR_SCHEMA.empty_table()

    def _exemplar_table(self, ex_lists, target, ref, keep, histogram) -> pa.Table | None:
        ex = pc.list_flatten(ex_lists)
        if len(ex) == 0:
            return None
        point = parents_from_offsets(list_offsets(ex_lists))
        value = _number_value(pc.struct_field(ex, "as_double"), pc.struct_field(ex, "as_int"))
        if histogram:
            first, pos, nb, b_off, bounds_l = target
            owner, bidx = _gather_ranges(b_off[:-1][point], nb[point])
            bounds = pc.list_flatten(bounds_l).to_numpy(zero_copy_only=False)[bidx]
            below = np.bincount(owner, weights=bounds < value[owner], minlength=len(ex)).astype(np.int64)
            row = first + pos[point] + below
        else:
            row = target[point]
        ok = keep[row]
        attrs = ex.field("filtered_attributes")
        a_par = parents_from_offsets(list_offsets(attrs))
        flat = pc.list_flatten(attrs)
        n = len(ex)
        names = pa.concat_arrays(
            [flat.field("key"), pa.array(["trace_id"] * n, pa.string()), pa.array(["span_id"] * n, pa.string())]
        )
        values = pa.concat_arrays(
            [_any_to_string(flat.field("value")), _hex(ex.field("trace_id"), 16), _hex(ex.field("span_id"), 8)]
        )
        parents = np.concatenate([a_par, np.arange(n), np.arange(n)])
        nonempty = pc.not_equal(pc.binary_length(values), 0).to_numpy(zero_copy_only=False)
        order = np.flatnonzero(nonempty)[np.argsort(parents[nonempty], kind="stable")]
        counts = np.bincount(parents[order], minlength=n)
        offsets = np.zeros(n + 1, np.int32)
        np.cumsum(counts, out=offsets[1:])
        labels = pa.ListArray.from_arrays(
            pa.array(offsets),
            pa.StructArray.from_arrays([names.take(pa.array(order)), values.take(pa.array(order))], fields=list(LABEL)),
            type=LABELS,
        )
        sel = np.flatnonzero(ok)
        return pa.Table.from_arrays(
            [
                pa.array(ref[row[sel]].astype(np.uint32)),
                pa.array(_ns_to_ms(ex.field("time_unix_nano"))[sel]),
                pa.array(value[sel]),
                labels.take(pa.array(sel)),
            ],
            schema=EXEMPLAR_SCHEMA,
        )


def _used_series(series: pa.Table, ref: np.ndarray, sel: np.ndarray) -> tuple[pa.Table, np.ndarray]:
    """Drop series left without samples (all refused) and renumber refs (-1 for dropped)."""
    used = np.zeros(series.num_rows, bool)
    used[ref[sel]] = True
    if used.all():
        return series, ref
    new = np.full(series.num_rows, -1, np.int64)
    new[used] = np.arange(int(used.sum()))
    return series.filter(pa.array(used)), new[ref]


def _job_instance(attrs: dict[str, str]) -> tuple[str, str]:
    job = attrs.get(_SERVICE_NAME, "")
    if job and attrs.get(_SERVICE_NAMESPACE):
        job = f"{attrs[_SERVICE_NAMESPACE]}/{job}"
    return job, attrs.get(_SERVICE_INSTANCE, "")


_KIND_FIELDS = ("gauge", "sum", "histogram", "exponential_histogram", "summary")


class _BaseLabels:
    """Every point's labels except ``__name__``/``le``/``quantile``, resolved by precedence.

    Flat, sorted by (point, name): ``names``/``values`` with ``offsets`` per global point.
    """

    def __init__(self, tr: _Translation, kinds: dict[str, _Points], point_metric: np.ndarray, npoints: int) -> None:
        self.tr = tr
        res_pairs, scope_pairs = self._resource_and_scope(tr)
        tr.resource_attrs = res_pairs["attrs"]
        # data point attributes
        a_owner, a_key, a_value = [], [], []
        for pts in kinds.values():
            lists = pts.arr.field("attributes")
            flat = pc.list_flatten(lists)
            a_owner.append(pts.gid[parents_from_offsets(list_offsets(lists))])
            a_key.append(flat.field("key"))
            a_value.append(_any_to_string(flat.field("value")))
        owner = np.concatenate(a_owner) if a_owner else np.zeros(0, np.int64)
        keys = pa.concat_arrays(a_key) if a_key else pa.array([], pa.string())
        values = pa.concat_arrays(a_value) if a_value else pa.array([], pa.string())
        enc = pc.dictionary_encode(keys)
        escaped = [tr.t._label(k) for k in enc.dictionary.to_pylist()]
        valid = np.array([e is not None for e in escaped] or [True], bool)[enc.indices.to_numpy()]
        self.bad_point = np.zeros(npoints, bool)
        self.bad_point[owner[~valid]] = True
        esc_names = pa.array([e or "" for e in escaped] or [""], pa.string()).take(enc.indices)
        if not valid.all():  # the points are refused; their invalid labels must not reach the table
            ok = np.flatnonzero(valid)
            owner, keys, values, esc_names = owner[ok], keys.take(ok), values.take(ok), esc_names.take(ok)
        prio = np.full(len(owner), _P_ATTR, np.int8)
        # per-resource and per-scope labels, broadcast to points
        res_of_point = tr.m_res[point_metric] if npoints else np.zeros(0, np.int64)
        scope_of_point = tr.m_scope[point_metric] if npoints else np.zeros(0, np.int64)
        parts_owner, parts_name, parts_value, parts_prio, parts_raw = [owner], [esc_names], [values], [prio], [keys]
        for table, of_point in ((res_pairs["labels"], res_of_point), (scope_pairs, scope_of_point)):
            names, vals, prios, offs = table
            o, idx = _gather_ranges(offs[:-1][of_point], np.diff(offs)[of_point])
            parts_owner.append(o)
            parts_name.append(names.take(pa.array(idx)))
            parts_value.append(vals.take(pa.array(idx)))
            parts_prio.append(prios[idx])
            parts_raw.append(names.take(pa.array(idx)))
        self._resolve(
            np.concatenate(parts_owner), pa.concat_arrays(parts_name), pa.concat_arrays(parts_value),
            np.concatenate(parts_prio), pa.concat_arrays(parts_raw), npoints,
        )

    def _resource_and_scope(self, tr: _Translation):
        """Python per resource and per scope: promoted attributes, job/instance, scope labels."""
        opts = tr.opts
        res_attr_lists = pc.struct_field(tr.rm.field("resource"), "attributes")
        flat = pc.list_flatten(res_attr_lists)
        r_par = parents_from_offsets(list_offsets(res_attr_lists))
        r_keys = flat.field("key").to_pylist()
        r_vals = _any_to_string(flat.field("value")).to_pylist()
        attrs: list[dict[str, str]] = [{} for _ in range(len(tr.rm))]
        for p, k, v in zip(r_par.tolist(), r_keys, r_vals, strict=True):
            attrs[p].setdefault(k, v)
        promote = set(opts.promote_resource_attributes)
        labels = []
        for a in attrs:
            promoted = tr._escape_pairs([(k, v) for k, v in a.items() if k in promote])
            entries = [(n, v, _P_PROMOTED) for n, v in promoted.items()]
            job, instance = _job_instance(a)
            entries += [(n, v, _P_TARGET) for n, v in (("job", job), ("instance", instance)) if v]
            labels.append(entries)
        scopes = []
        if opts.promote_scope_metadata:
            sc = tr.sm.field("scope")
            s_names = pc.struct_field(sc, "name").fill_null("").to_pylist()
            s_vers = pc.struct_field(sc, "version").fill_null("").to_pylist()
            s_urls = tr.sm.field("schema_url").to_pylist()
            s_attr_lists = pc.struct_field(sc, "attributes")
            s_flat = pc.list_flatten(s_attr_lists)
            s_par = parents_from_offsets(list_offsets(s_attr_lists)).tolist()
            s_pairs: list[list[tuple[str, str]]] = [[] for _ in range(len(tr.sm))]
            s_keys = s_flat.field("key").to_pylist()
            s_vals = _any_to_string(s_flat.field("value")).to_pylist()
            for p, k, v in zip(s_par, s_keys, s_vals, strict=True):
                s_pairs[p].append(("otel_scope_" + k, v))
            for i in range(len(tr.sm)):
                entries = [(n, v, _P_SCOPE) for n, v in tr._escape_pairs(s_pairs[i]).items()]
                meta = (("otel_scope_name", s_names[i]), ("otel_scope_version", s_vers[i]),
                        ("otel_scope_schema_url", s_urls[i]))  # fmt: skip
                entries += [(n, v, _P_SCOPE) for n, v in meta if v]
                scopes.append(entries)
        else:
            scopes = [[] for _ in range(len(tr.sm))]
        return {"attrs": attrs, "labels": _flat_table(labels)}, _flat_table(scopes)

    def _resolve(self, owner, names, values, prio, raw, npoints) -> None:
        order = pc.sort_indices(
            pa.table({"o": owner, "n": names, "p": prio, "r": raw}),
            sort_keys=[("o", "ascending"), ("n", "ascending"), ("p", "ascending"), ("r", "ascending")],
        ).to_numpy()
        owner, prio = owner[order], prio[order]
        names, values = names.take(pa.array(order)), values.take(pa.array(order))
        name_np = names.to_numpy(zero_copy_only=False)
        n = len(owner)
        same_next = np.zeros(n, bool)
        if n > 1:
            same_next[:-1] = (owner[1:] == owner[:-1]) & (name_np[1:] == name_np[:-1])
        last = ~same_next  # the highest-precedence entry of each (point, name) group
        value_list = None
        collide = np.flatnonzero(same_next & np.concatenate([prio[1:] == prio[:-1], [False]]) if n else same_next)
        if collide.size:  # escaped-name collisions at the same precedence: join with ';' (rare)
            value_list = values.to_pylist()
            for i in collide:
                value_list[i + 1] = value_list[i] + ";" + value_list[i + 1]
            values = pa.array(value_list, pa.string())
        sel = np.flatnonzero(last)
        self.names = names.take(pa.array(sel))
        self.values = values.take(pa.array(sel))
        owner = owner[sel]
        self.offsets = np.zeros(npoints + 1, np.int64)
        np.cumsum(np.bincount(owner, minlength=npoints), out=self.offsets[1:])
        sel_names = name_np[sel]
        self.is_name = sel_names == METRIC_NAME
        self.is_le = sel_names == "le"
        self.is_q = sel_names == "quantile"


def _flat_table(groups: list[list[tuple[str, str, int]]]):
    """Python label lists per resource/scope → (names, values, prio, offsets) arrays."""
    names = [n for g in groups for n, _, _ in g]
    values = [v for g in groups for _, v, _ in g]
    prios = np.array([p for g in groups for _, _, p in g], np.int8)
    offs = np.zeros(len(groups) + 1, np.int64)
    np.cumsum([len(g) for g in groups], out=offs[1:])
    return pa.array(names, pa.string()), pa.array(values, pa.string()), prios, offs
