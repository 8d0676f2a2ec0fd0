"""Decode ``ExportLogsServiceRequest`` bytes into a :class:`LogBatch`, the way Loki ingests OTLP.

Mapping (Loki's ``pkg/loghttp/push/otlp.go``, default ``otlp_config``):

- stream labels: the resource attributes listed in ``LogsIngestOptions.stream_label_attributes``,
  names normalized (``service.name`` → ``service_name``); a resource without ``service.name``
  gets ``service_name`` from the first ``discover_service_name`` label, else ``unknown_service``;
- structured metadata, in Loki's order: the record's attributes, ``observed_timestamp`` (only
  when the record also has its own timestamp), ``severity_number``, ``severity_text``,
  ``dropped_attributes_count``, ``flags``, ``trace_id``, ``span_id`` (hex), then (our addition)
  ``event_name``, then the other resource attributes, then the scope's attributes,
  ``scope_name``, ``scope_version``, ``scope_dropped_attributes_count``. Zero/empty fields are
  left out, map values flatten to ``<key>_<subkey>``;
- the line is the body's ``AsString`` (strings as is, maps/arrays as Go JSON, see
  :mod:`lookout.logs.anyvalue`);
- the timestamp is ``time_unix_nano``, else ``observed_time_unix_nano``, else the receive time.

ptars turns the protobuf into Arrow in Rust and pyarrow/numpy reshape it: Python runs once per
resource and per scope (a handful per request), never per record, except for the rare
array/map/bytes values.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cache

import numpy as np
import ptars
import pyarrow as pa
import pyarrow.compute as pc
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from lookout.logs import anyvalue
from lookout.logs.ingest import SERVICE_NAME, UNKNOWN_SERVICE, LogsIngestOptions, apply_limits
from lookout.logs.model import ENTRY_SCHEMA, stream_id
from lookout.logs.schema import LogBatch
from lookout.otlp.errors import OtlpDecodeError

__all__ = ["LogsIngestOptions", "decode_logs", "hex_ids", "resource_streams"]

_INT64_MAX = 2**63 - 1
_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
_CAT = 1 << 40  # metadata order key: category * _CAT + position within the category
_MD_TYPE = ENTRY_SCHEMA.field("metadata").type


@cache
def _handler() -> ptars._lib.MessageHandler:
    pool = ptars.HandlerPool([ExportLogsServiceRequest.DESCRIPTOR.file])
    return pool.get_for_message(ExportLogsServiceRequest.DESCRIPTOR)


# --------------------------------------------------------------------------------------------
# small vectorized helpers


def hex_ids(ids: pa.Array, size: int) -> pa.StringArray:
    """Lowercase hex of fixed-size ids (binary values of exactly ``size`` bytes, no nulls)."""
    n = len(ids)
    if n == 0:
        return pa.array([], pa.string())
    fixed = ids.cast(pa.binary(size)) if ids.type != pa.binary(size) else ids
    raw = np.frombuffer(fixed.buffers()[1], np.uint8, (fixed.offset + n) * size)[fixed.offset * size:]
    raw = raw.reshape(n, size)
    out = np.empty((n, 2 * size), np.uint8)
    out[:, 0::2] = _HEX[raw >> 4]
    out[:, 1::2] = _HEX[raw & 15]
    offsets = np.arange(0, (n + 1) * 2 * size, 2 * size, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(out.tobytes()))


def _normalized_keys(keys: pa.Array) -> pa.Array:
    """``normalize_label`` on attribute keys, computed once per distinct key."""
    if len(keys) == 0:
        return pa.array([], pa.string())
    enc = pc.dictionary_encode(keys)
    names = pa.array([anyvalue.normalize_label(k) for k in enc.dictionary.to_pylist()], pa.string())
    return names.take(enc.indices)


def _broadcast(group: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For rows that belong to ``group[row]`` whose items are ``offsets[g]:offsets[g+1]``:
    (row of each output item, position within the group, index of the source item)."""
    counts = offsets[group + 1] - offsets[group]
    total = int(counts.sum())
    rows = np.repeat(np.arange(len(group)), counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    within = np.arange(total) - starts
    return rows, within, offsets[group][rows] + within


class _Pairs:
    """Metadata pairs collected from several sources, assembled into one map column at the end."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.rows: list[np.ndarray] = []
        self.order: list[np.ndarray] = []
        self.keys: list[pa.Array] = []
        self.values: list[pa.Array] = []

    def add(self, rows: np.ndarray, order: np.ndarray, keys: pa.Array, values: pa.Array) -> None:
        if len(rows):
            self.rows.append(rows.astype(np.int64))
            self.order.append(order.astype(np.int64))
            self.keys.append(keys.cast(pa.string()))
            self.values.append(values.cast(pa.string()))

    def add_field(self, category: int, name: str, mask: np.ndarray, values: pa.Array) -> None:
        """One fixed field (``severity_text`` ...) for the rows where ``mask`` holds."""
        idx = np.flatnonzero(mask)
        if idx.size:
            self.add(idx, np.full(idx.size, category * _CAT), pa.array([name] * idx.size, pa.string()),
                     values.take(pa.array(idx)) if len(values) == self.n else values)

    def build(self) -> pa.MapArray:
        if not self.rows:
            return pa.array([[] for _ in range(self.n)], _MD_TYPE) if self.n else pa.array([], _MD_TYPE)
        rows = np.concatenate(self.rows)
        order = np.concatenate(self.order)
        perm = pa.array(np.lexsort((order, rows)))
        keys = pa.concat_arrays(self.keys).take(perm)
        values = pa.concat_arrays(self.values).take(perm)
        offsets = np.zeros(self.n + 1, np.int32)
        np.cumsum(np.bincount(rows, minlength=self.n), out=offsets[1:])
        return pa.MapArray.from_arrays(pa.array(offsets), keys, values, type=_MD_TYPE)


# --------------------------------------------------------------------------------------------
# per resource / per scope (Python, once per distinct resource)


def _kv_labels(kvs: list[dict] | None) -> list[tuple[str, str, str]]:
    """(original key, label name, value) of ptars KeyValue dicts, maps flattened."""
    out: list[tuple[str, str, str]] = []
    for kv in kvs or []:
        value = anyvalue.from_ptars(kv["value"])
        out.extend((kv["key"], name, text) for name, text in anyvalue.to_labels(kv["key"], value))
    return out


def resource_streams(attrs: list[dict] | None, opts: LogsIngestOptions) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """(stream labels, structured-metadata pairs) of one resource's attribute list."""
    index = set(opts.stream_label_attributes)
    discover = opts.discover_service_name
    labels: dict[str, str] = {}
    metadata: list[tuple[str, str]] = []
    first = next((kv for kv in attrs or [] if kv["key"] == "service.name"), None)
    has_service = first is not None and anyvalue.as_string(anyvalue.from_ptars(first["value"])) != ""
    for key, name, value in _kv_labels(attrs):
        if key not in index:
            metadata.append((name, value))
            continue
        if value != "":
            labels[name] = value
        if not has_service and discover and name in discover and value != "":
            labels[SERVICE_NAME] = value
            has_service = True
    if not has_service and discover:
        labels[SERVICE_NAME] = UNKNOWN_SERVICE
    return labels, metadata


def _scope_metadata(scope: dict | None) -> list[tuple[str, str]]:
    if scope is None:
        return []
    out = [(name, value) for _, name, value in _kv_labels(scope.get("attributes"))]
    if scope.get("name"):
        out.append(("scope_name", scope["name"]))
    if scope.get("version"):
        out.append(("scope_version", scope["version"]))
    if scope.get("dropped_attributes_count"):
        out.append(("scope_dropped_attributes_count", str(scope["dropped_attributes_count"])))
    return out


def _group_pairs(groups: list[list[tuple[str, str]]]) -> tuple[np.ndarray, pa.Array, pa.Array]:
    offsets = np.zeros(len(groups) + 1, np.int64)
    np.cumsum([len(g) for g in groups], out=offsets[1:])
    keys = pa.array([k for g in groups for k, _ in g], pa.string())
    values = pa.array([v for g in groups for _, v in g], pa.string())
    return offsets, keys, values


# --------------------------------------------------------------------------------------------
# per record (vectorized)


def _any_strings(values: pa.StructArray, *, body: bool) -> pa.Array:
    """``AsString`` of every value; Python only for arrays, maps, bytes and empty values."""
    out, rest = anyvalue.scalar_strings(values)
    if rest.size == 0:
        return out
    sub = values.take(pa.array(rest)).to_pylist()
    fixed = [anyvalue.as_string(anyvalue.from_ptars(v, body=body)) for v in sub]
    py = out.to_pylist()
    for i, text in zip(rest.tolist(), fixed, strict=True):
        py[i] = text
    return pa.array(py, pa.string())


def _record_attributes(pairs: _Pairs, attrs: pa.ListArray) -> None:
    """Log attributes in order; map values flatten into several pairs (Python, rare)."""
    flat = pc.list_flatten(attrs)
    if len(flat) == 0:
        return
    rows = pc.list_parent_indices(attrs).to_numpy().astype(np.int64)
    offs = attrs.offsets.to_numpy().astype(np.int64)
    pos = np.arange(len(flat)) - (offs[rows] - offs[0])
    keys = flat.field("key")
    values = flat.field("value")
    kvlist = pc.struct_field(values, "kvlist_value").is_valid().to_numpy(zero_copy_only=False)
    plain = np.flatnonzero(~kvlist)
    take = pa.array(plain)
    pairs.add(rows[plain], pos[plain] << 12, _normalized_keys(keys.take(take)),
              _any_strings(values.take(take), body=False))
    nested = np.flatnonzero(kvlist)
    if nested.size:
        r, o, k, v = [], [], [], []
        for i, kv_key, val in zip(nested.tolist(), keys.take(pa.array(nested)).to_pylist(),
                                  values.take(pa.array(nested)).to_pylist(), strict=True):
            for j, (name, text) in enumerate(anyvalue.to_labels(kv_key, anyvalue.from_ptars(val))):
                r.append(rows[i])
                o.append((int(pos[i]) << 12) + j)
                k.append(name)
                v.append(text)
        pairs.add(np.array(r), np.array(o), pa.array(k, pa.string()), pa.array(v, pa.string()))


def _ids(recs: pa.StructArray, name: str, size: int, path) -> tuple[np.ndarray, pa.Array]:
    """(mask of records with a non-zero id, their hex) — Loki leaves all-zero ids out."""
    arr = recs.field(name)
    lengths = pc.binary_length(arr).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero((lengths != size) & (lengths != 0))
    if bad.size:
        i = int(bad[0])
        raise OtlpDecodeError(f"{path(i)}.{name}: expected {size} bytes, got {int(lengths[i])}")
    has = lengths == size
    idx = np.flatnonzero(has)
    hexed = hex_ids(arr.take(pa.array(idx)), size)
    nonzero = pc.not_equal(hexed, "0" * (2 * size)).to_numpy(zero_copy_only=False)
    mask = np.zeros(len(arr), bool)
    mask[idx[nonzero]] = True
    return mask, hexed.filter(pa.array(nonzero))


def _u64_to_i64(arr: pa.Array, what) -> np.ndarray:
    values = arr.to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(values > _INT64_MAX)
    if bad.size:
        raise OtlpDecodeError(f"{what(int(bad[0]))}: {int(values[bad[0]])} is out of int64 range")
    return values.astype(np.int64)


def _ptars_decode(data: bytes) -> pa.Array:
    try:
        return _handler().list_to_record_batch([data]).column(0)
    except Exception as exc:  # ptars raises plain RuntimeError/ValueError on bad input
        raise OtlpDecodeError(f"invalid protobuf ExportLogsServiceRequest: {exc}") from exc


def decode_logs(payloads: bytes | Sequence[bytes], options: LogsIngestOptions | None = None, *,
                now_ns: int | None = None) -> LogBatch:
    """Serialized ``ExportLogsServiceRequest``(s) → one :class:`LogBatch`, entries in request order.

    Several payloads are decoded in one ptars call (protobuf concatenation merges requests).
    Raises :class:`OtlpDecodeError` for invalid protobuf, ids of the wrong length or times beyond
    int64; entries over a limit are refused and counted in ``LogBatch.refused``."""
    opts = options or LogsIngestOptions()
    data = payloads if isinstance(payloads, bytes | bytearray | memoryview) else b"".join(payloads)
    rl = pc.list_flatten(_ptars_decode(bytes(data)))
    sl_lists = rl.field("scope_logs")
    sl = pc.list_flatten(sl_lists)
    rec_lists = sl.field("log_records")
    recs = pc.list_flatten(rec_lists)
    n = len(recs)
    if n == 0:
        return LogBatch.empty()
    scope_res = pc.list_parent_indices(sl_lists).to_numpy().astype(np.int64)
    rec_scope = pc.list_parent_indices(rec_lists).to_numpy().astype(np.int64)
    rec_res = scope_res[rec_scope]
    scope_offs = sl_lists.offsets.to_numpy()
    rec_offs = rec_lists.offsets.to_numpy()

    def path(i: int) -> str:
        g, r = int(rec_scope[i]), int(rec_res[i])
        return (f"resource_logs[{r}].scope_logs[{g - int(scope_offs[r] - scope_offs[0])}]"
                f".log_records[{i - int(rec_offs[g] - rec_offs[0])}]")

    # per resource: stream labels and resource metadata
    res_attrs = pc.struct_field(rl.field("resource"), "attributes").to_pylist()
    streams: dict[int, dict[str, str]] = {}
    res_sid = np.empty(len(rl), np.uint64)
    res_md = []
    for r, attrs in enumerate(res_attrs):
        labels, md = resource_streams(attrs, opts)
        sid = stream_id(labels)
        streams[sid] = labels
        res_sid[r] = sid
        res_md.append(md)
    scope_md = [_scope_metadata(s) for s in sl.field("scope").to_pylist()]

    # timestamps
    ts = _u64_to_i64(recs.field("time_unix_nano"), lambda i: f"{path(i)}.time_unix_nano")
    observed = _u64_to_i64(recs.field("observed_time_unix_nano"), lambda i: f"{path(i)}.observed_time_unix_nano")
    when = np.where(ts != 0, ts, np.where(observed != 0, observed, time.time_ns() if now_ns is None else now_ns))

    # metadata, in Loki's order
    pairs = _Pairs(n)
    _record_attributes(pairs, recs.field("attributes"))
    pairs.add_field(1, "observed_timestamp", (ts != 0) & (observed != 0), pa.array(observed).cast(pa.string()))
    sev = recs.field("severity_number")
    pairs.add_field(2, "severity_number", pc.not_equal(sev, 0).to_numpy(zero_copy_only=False), sev.cast(pa.string()))
    sev_text = recs.field("severity_text")
    pairs.add_field(3, "severity_text", pc.not_equal(sev_text, "").to_numpy(zero_copy_only=False), sev_text)
    dropped = recs.field("dropped_attributes_count")
    pairs.add_field(4, "dropped_attributes_count", pc.not_equal(dropped, 0).to_numpy(zero_copy_only=False),
                    dropped.cast(pa.string()))
    flags = recs.field("flags")
    pairs.add_field(5, "flags", pc.not_equal(flags, 0).to_numpy(zero_copy_only=False), flags.cast(pa.string()))
    for cat, name, size in ((6, "trace_id", 16), (7, "span_id", 8)):
        mask, hexed = _ids(recs, name, size, path)
        pairs.add_field(cat, name, mask, hexed)
    event = recs.field("event_name")
    pairs.add_field(8, "event_name", pc.not_equal(event, "").to_numpy(zero_copy_only=False), event)
    for cat, groups, owner in ((9, res_md, rec_res), (10, scope_md, rec_scope)):
        offsets, keys, values = _group_pairs(groups)
        rows, within, src = _broadcast(owner, offsets)
        pairs.add(rows, cat * _CAT + within, keys.take(pa.array(src)), values.take(pa.array(src)))

    entries = pa.Table.from_arrays(
        [pa.array(res_sid[rec_res], pa.uint64()), pa.array(when, pa.int64()),
         _any_strings(recs.field("body"), body=True).fill_null(""), pairs.build()],
        schema=ENTRY_SCHEMA)
    return apply_limits(LogBatch(streams, entries), opts)
