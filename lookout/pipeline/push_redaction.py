"""The ``redaction`` request processors on Loki push and Prometheus remote-write bodies.

Why: the redaction promise ("a secret never reaches the disk") must hold for every wire format
a signal accepts, not only OTLP. Loki push bodies and remote-write bodies go to the write-ahead
log in their own format (``lookout.ingest.formats``), so they are redacted in that format and
re-encoded the same way: the log's format tag stays true and the consumers' decoders are
unchanged.

What each format gets, per redaction processor in pipeline order:

- Loki push (snappy protobuf ``logproto.PushRequest``; JSON, plain or gzip): every line gets the
  value rules like an OTLP log body (``apply_to: log_bodies``); structured metadata gets the
  full attribute treatment — ignored keys, key deletion unless ``allow_all_keys``, allowed
  values, blocked key patterns, value rules (``apply_to: attributes`` / ``urls``); stream label
  values get the same minus deletion: a stream needs its labels, so label keys are never
  deleted and only their values are masked (which may merge streams — the point of masking).
- Remote write (snappy ``prometheus.WriteRequest``): series and exemplar label values like
  stream labels; ``__name__`` is never touched (it is the metric, not data).

How, without Python per entry: the protobuf is decoded by ptars with the descriptors the
decoders already use, every string of a kind (all lines, all metadata pairs, all labels) is
redacted in one vectorized call, the nested Arrow is rebuilt around the new leaves and
re-encoded with :func:`lookout.otlp.arrow_encode.encode_request`. Loki stream labels arrive as
one ``{a="b"}`` string per *stream*; they are parsed per stream (cached, as the decoder does)
and only changed streams are re-formatted. JSON bodies are parsed by ``json`` (Python per
entry anyway) and written back as plain JSON (the ``loki_json`` log format is uncompressed).

A body nothing changed is returned as the exact bytes the client sent. Re-encoding drops
unknown protobuf fields and normalizes a Loki timestamp to (seconds, nanos ≥ 0); both decode
to the same entries. Not covered: the Collector's summary attributes (these formats have no
typed place for counts), remote-write metadata help text, and the other request processors
(``filter``, ``attributes``, ``resource``), which work on OTLP only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import cramjam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lookout.ingest import formats
from lookout.pipeline.processors.redaction import RedactionProcessor

__all__ = ["PUSH_FORMATS", "redact_push", "redaction_processors"]

PUSH_FORMATS = frozenset({formats.LOKI_PUSH, formats.LOKI_JSON, formats.PROM_REMOTE_WRITE})
METRIC_NAME = "__name__"


def redaction_processors(processors: Sequence[object]) -> list[RedactionProcessor]:
    """The processors of a pipeline that apply to push formats (only ``redaction`` today)."""
    return [p for p in processors if isinstance(p, RedactionProcessor)]


def redact_push(fmt: str, body: bytes, processors: Sequence[RedactionProcessor]) -> tuple[bytes, int]:
    """``(body to append, items)`` for a validated push body of format ``fmt``; the body is the
    same object when no processor changed anything."""
    if fmt == formats.LOKI_PUSH:
        return _loki_protobuf(body, processors)
    if fmt == formats.LOKI_JSON:
        return _loki_json(body, processors)
    if fmt == formats.PROM_REMOTE_WRITE:
        return _remote_write(body, processors)
    raise ValueError(f"no push redaction for format {fmt!r}")


# --------------------------------------------------------------------------------------------
# Arrow helpers


def _np(arr: pa.Array) -> np.ndarray:
    return arr.to_numpy(zero_copy_only=False)


def _with_field(arr: pa.StructArray, name: str, child: pa.Array) -> pa.StructArray:
    """``arr`` with field ``name`` replaced by ``child`` (cast to the field's type)."""
    fields = list(arr.type)
    children = [child.cast(f.type) if f.name == name else pc.struct_field(arr, f.name) for f in fields]
    return pa.StructArray.from_arrays(children, fields=fields,
                                      mask=arr.is_null() if arr.null_count else None)


def _relist(lists: pa.ListArray, values: pa.Array, offsets: np.ndarray | None = None) -> pa.ListArray:
    """A list array like ``lists`` (same rows, item field name) holding ``values``; ``offsets``
    when the items changed in number, else ``lists``' own offsets rebased to 0."""
    if offsets is None:
        raw = lists.offsets.to_numpy().astype(np.int64)
        offsets = raw - raw[0]
    item = lists.type.value_field
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values,
                                    type=pa.list_(pa.field(item.name, values.type, item.nullable)),
                                    mask=lists.is_null() if lists.null_count else None)


def _kept_offsets(lists: pa.ListArray, keep: np.ndarray) -> np.ndarray:
    """Offsets of ``lists`` after dropping the flat items where ``keep`` is false."""
    parents = _np(pc.list_parent_indices(lists)).astype(np.int64)
    out = np.zeros(len(lists) + 1, np.int64)
    np.cumsum(np.bincount(parents[keep], minlength=len(lists)), out=out[1:])
    return out


def _redact_pairs(processors: Sequence[RedactionProcessor], keys: pa.Array, values: pa.Array, *,
                  may_delete: bool, protected: np.ndarray | None = None
                  ) -> tuple[pa.Array, np.ndarray] | None:
    """Every processor's key/value rules in order over flat pairs: ``(values, keep)`` indexed
    like the input, or None when nothing changed."""
    keep = np.ones(len(keys), np.bool_)
    changed = False
    for p in processors:
        live = np.flatnonzero(keep)
        if live.size == 0:
            break
        sel = None if live.size == len(keys) else pa.array(live)
        res = p.redact_pairs(keys if sel is None else keys.take(sel),
                             values if sel is None else values.take(sel), may_delete=may_delete,
                             protected=None if protected is None else protected[live])
        if res is None:
            continue
        new, kept = res
        changed = True
        values = new if sel is None else pc.replace_with_mask(values, pa.array(keep), new.cast(values.type))
        keep[live[~kept]] = False
    return (values, keep) if changed else None


def _redact_strings(processors: Sequence[RedactionProcessor], values: pa.Array,
                    place: str) -> pa.Array | None:
    changed = False
    for p in processors:
        new = p.redact_strings(values, place)
        if new is not None:
            values, changed = new, True
    return values if changed else None


def _count_received(processors: Sequence[RedactionProcessor], items: int) -> None:
    for p in processors:
        p.stats.add("received_items", items)


class _Labels:
    """Stream label sets as flat ``(name, value)`` arrays with their stream index."""

    def __init__(self, label_sets: list[dict[str, str]]) -> None:
        self.sets = label_sets
        counts = np.fromiter((len(s) for s in label_sets), np.int64, len(label_sets))
        self.parents = np.repeat(np.arange(len(label_sets), dtype=np.int64), counts)
        self.names = pa.array([k for s in label_sets for k in s], pa.string())
        self.values = pa.array([v for s in label_sets for v in s.values()], pa.string())

    def redact(self, processors: Sequence[RedactionProcessor]) -> dict[int, dict[str, str]]:
        """``{stream index: new labels}`` for the streams whose label values changed."""
        res = _redact_pairs(processors, self.names, self.values, may_delete=False)
        if res is None:
            return {}
        new = res[0]
        diff = np.flatnonzero(_np(pc.fill_null(pc.not_equal(new, self.values), True)))
        out: dict[int, dict[str, str]] = {}
        names, vals = self.names.take(pa.array(diff)).to_pylist(), new.take(pa.array(diff)).to_pylist()
        for i, name, value in zip(self.parents[diff].tolist(), names, vals, strict=True):
            out.setdefault(i, dict(self.sets[i]))[name] = value
        return out


# --------------------------------------------------------------------------------------------
# Loki push, protobuf


def _loki_protobuf(body: bytes, processors: Sequence[RedactionProcessor]) -> tuple[bytes, int]:
    from lookout.logs import loki_push
    from lookout.otlp.arrow_encode import encode_request

    root = loki_push._decode_proto(loki_push._snappy(body))  # one row: list<StreamAdapter>
    streams = pc.list_flatten(root)
    entry_lists = streams.field("entries")
    entries = pc.list_flatten(entry_lists)
    _count_received(processors, len(entries))
    if len(entries) == 0:
        return body, 0
    changed = False

    new_lines = _redact_strings(processors, entries.field("line"), "log_bodies")
    if new_lines is not None:
        entries = _with_field(entries, "line", new_lines)
        changed = True

    md_lists = entries.field("structuredMetadata")
    md = pc.list_flatten(md_lists)
    res = _redact_pairs(processors, md.field("name"), md.field("value"), may_delete=True)
    if res is not None:
        values, keep = res
        md = _with_field(md, "value", values).filter(pa.array(keep))
        entries = _with_field(entries, "structuredMetadata",
                              _relist(md_lists, md, _kept_offsets(md_lists, keep)))
        changed = True

    label_strings = streams.field("labels")
    texts = label_strings.to_pylist()
    relabeled = _Labels([loki_push.parse_labels(t) for t in texts]).redact(processors)
    if relabeled:
        for i, labels in relabeled.items():
            texts[i] = loki_push.format_labels(labels)
        streams = _with_field(streams, "labels", pa.array(texts, pa.string()))
        changed = True

    if not changed:
        return body, len(entries)
    ts = entries.field("timestamp").cast(pa.int64())
    ts_np = _np(ts)
    seconds = np.floor_divide(ts_np, 1_000_000_000)
    nanos = (ts_np - seconds * 1_000_000_000).astype(np.int32)
    desc = loki_push._pool().FindMessageTypeByName("logproto.PushRequest")
    ts_struct = pa.StructArray.from_arrays([pa.array(seconds, pa.int64()), pa.array(nanos, pa.int32())],
                                           names=["seconds", "nanos"])
    entries = _replace_timestamp(entries, ts_struct)
    streams = _with_any_field(streams, "entries", _relist(entry_lists, entries))
    raw = encode_request(_relist(root, streams), desc)
    return bytes(cramjam.snappy.compress_raw(raw)), len(entries)


def _replace_timestamp(entries: pa.StructArray, ts: pa.StructArray) -> pa.StructArray:
    """The entries with ``timestamp`` as the ``Timestamp`` message struct the encoder writes
    (ptars decodes the well-known type to an Arrow timestamp, which it cannot encode)."""
    fields = [pa.field("timestamp", ts.type, nullable=True) if f.name == "timestamp" else f
              for f in entries.type]
    children = [ts if f.name == "timestamp" else pc.struct_field(entries, f.name) for f in fields]
    return pa.StructArray.from_arrays(children, fields=fields)


def _with_any_field(arr: pa.StructArray, name: str, child: pa.Array) -> pa.StructArray:
    """Like :func:`_with_field` but the field takes ``child``'s type (a changed item shape)."""
    fields = [pa.field(name, child.type, nullable=f.nullable) if f.name == name else f for f in arr.type]
    children = [child if f.name == name else pc.struct_field(arr, f.name) for f in fields]
    return pa.StructArray.from_arrays(children, fields=fields)


# --------------------------------------------------------------------------------------------
# Loki push, JSON


def _loki_json(body: bytes, processors: Sequence[RedactionProcessor]) -> tuple[bytes, int]:
    from lookout.logs import loki_push

    doc = json.loads(loki_push._maybe_gunzip(body))  # validated before: an object with streams
    streams = doc["streams"]
    values_of = [s["values"] for s in streams]
    entries = [v for vs in values_of for v in vs]
    _count_received(processors, len(entries))
    if not entries:
        return body, 0
    changed = False

    lines = pa.array([e[1] for e in entries], pa.string())
    new_lines = _redact_strings(processors, lines, "log_bodies")
    if new_lines is not None:
        for i in np.flatnonzero(_np(pc.fill_null(pc.not_equal(new_lines, lines), False))).tolist():
            entries[i][1] = new_lines[i].as_py()
        changed = True

    with_md = [i for i, e in enumerate(entries) if len(e) == 3 and e[2]]
    if with_md:
        mds = [entries[i][2] for i in with_md]
        counts = np.fromiter((len(m) for m in mds), np.int64, len(mds))
        owner = np.repeat(np.arange(len(mds), dtype=np.int64), counts)
        keys = pa.array([k for m in mds for k in m], pa.string())
        old = pa.array([v for m in mds for v in m.values()], pa.string())
        res = _redact_pairs(processors, keys, old, may_delete=True)
        if res is not None:
            values, keep = res
            diff = ~keep | _np(pc.fill_null(pc.not_equal(values, old), True))
            kv = list(zip(keys.to_pylist(), values.to_pylist(), keep.tolist(), strict=True))
            offs = np.concatenate([[0], np.cumsum(counts)])
            for j in np.unique(owner[diff]).tolist():  # rebuild only the entries that changed
                entries[with_md[j]][2] = {k: v for k, v, ok in kv[offs[j]:offs[j + 1]] if ok}
            changed = True

    relabeled = _Labels([{k: v for k, v in s["stream"].items() if v != ""} for s in streams]).redact(processors)
    for i, labels in relabeled.items():
        streams[i]["stream"] = {**streams[i]["stream"], **labels}
        changed = True

    if not changed:
        return body, len(entries)
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode(), len(entries)


# --------------------------------------------------------------------------------------------
# Prometheus remote write


def _remote_write(body: bytes, processors: Sequence[RedactionProcessor]) -> tuple[bytes, int]:
    from lookout.metrics import prompb, remote_write
    from lookout.otlp.arrow_encode import encode_request

    data = remote_write._decompress(body, remote_write.DEFAULT_MAX_DECOMPRESSED)
    record = remote_write._handler().list_to_record_batch([data])
    ts_lists = record.column("timeseries")
    ts = pc.list_flatten(ts_lists)
    nsamples = int(pc.sum(pc.list_value_length(ts.field("samples"))).as_py() or 0)
    exemplar_lists = ts.field("exemplars")
    exemplars = pc.list_flatten(exemplar_lists)
    nhist = int(pc.sum(pc.list_value_length(ts.field("histograms"))).as_py() or 0)
    items = nsamples + len(exemplars) + nhist
    items = items or (1 if len(pc.list_flatten(record.column("metadata"))) else 0)
    _count_received(processors, items)

    new_labels = _redact_labels(processors, ts.field("labels"))
    new_ex_labels = _redact_labels(processors, exemplars.field("labels")) if len(exemplars) else None
    if new_labels is None and new_ex_labels is None:
        return body, items
    if new_labels is not None:
        ts = _with_field(ts, "labels", new_labels)
    if new_ex_labels is not None:
        ts = _with_field(ts, "exemplars", _relist(exemplar_lists, _with_field(exemplars, "labels", new_ex_labels)))
    columns = [_relist(ts_lists, ts) if name == "timeseries" else record.column(name)
               for name in record.schema.names]
    out = pa.RecordBatch.from_arrays(columns, schema=record.schema)
    raw = encode_request(out, prompb.descriptor("WriteRequest"))
    return bytes(cramjam.snappy.compress_raw(raw)), items


def _redact_labels(processors: Sequence[RedactionProcessor], label_lists: pa.ListArray) -> pa.ListArray | None:
    """Label lists with their values redacted (never ``__name__``, never deleted), or None."""
    flat = pc.list_flatten(label_lists)
    if len(flat) == 0:
        return None
    names = flat.field("name").cast(pa.string())  # validated UTF-8
    protected = _np(pc.equal(names, METRIC_NAME)).astype(np.bool_)
    res = _redact_pairs(processors, names, flat.field("value").cast(pa.string()), may_delete=False,
                        protected=protected)
    if res is None:
        return None
    return _relist(label_lists, _with_field(flat, "value", res[0].cast(pa.binary())))
