"""Prometheus remote write 1.0 (``prometheus.WriteRequest``, snappy block format) ⇄ MetricBatch.

Decoding follows the rest of the code base: ptars turns the protobuf into one nested Arrow record
and pyarrow compute / numpy do the rest, so no Python runs per sample or per label. Encoding is
for clients, tests, benchmarks and the conformance runner; its samples are encoded with numpy.

Validation follows Prometheus' own receiver (``storage/remote/write_handler.go``) with one
difference: Prometheus *drops* a series with invalid labels and logs a warning, while the remote
write 1.0 spec says such a request is a 400. Lookout rejects the whole request with a
:class:`RemoteWriteError` naming the series and the problem (nothing is half-written; the client
sees why). Like Prometheus, labels that are merely unsorted are sorted (not an error), duplicate
label names are an error, and the metric name must be present and non-empty. Names and values
must be valid UTF-8 (Prometheus 3's default ``utf8`` name validation: any non-empty UTF-8 label
name is accepted). Labels with an empty value are dropped: in Prometheus an empty value means
"no such label", and ``MetricBatch`` promises none. Series repeated within one request are
merged into one ``series`` row. Native histograms (``TimeSeries.histograms``) are not stored yet:
they are counted under :data:`REFUSED_NATIVE_HISTOGRAMS` by :func:`decode_write_request_counted`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Sequence
from functools import cache

import cramjam
import numpy as np
import ptars
import pyarrow as pa
import pyarrow.compute as pc

from lookout.ingest import snappy
from lookout.metrics import prompb
from lookout.metrics.batch import (
    EXEMPLAR_SCHEMA,
    LABEL,
    LABELS,
    SAMPLE_SCHEMA,
    SERIES_SCHEMA,
    MetricBatch,
    MetricMetadata,
)
from lookout.metrics.model import METRIC_NAME

DEFAULT_MAX_DECOMPRESSED = 64 << 20  # bytes; the OTLP recommendation, also fine for remote write
REFUSED_NATIVE_HISTOGRAMS = "native histograms are not supported yet"


class RemoteWriteError(ValueError):
    """A remote write request that cannot be accepted (HTTP 400); the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@cache
def _handler() -> ptars._lib.MessageHandler:
    pool = ptars.HandlerPool([prompb.file_descriptor()])
    return pool.get_for_message(prompb.descriptor("WriteRequest"))


# --------------------------------------------------------------------------------------------
# Shared with the OTLP translator: canonical series from flat label columns
# --------------------------------------------------------------------------------------------


def list_offsets(lists: pa.ListArray) -> np.ndarray:
    """int64 offsets of a list array, rebased to 0 (ptars' lists may be slices)."""
    offsets = lists.offsets.to_numpy().astype(np.int64)
    return offsets - offsets[0]


def parents_from_offsets(offsets: np.ndarray) -> np.ndarray:
    """For each element of the flat values, the index of its list (vectorized)."""
    return np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))


def canonical_series(
    names: pa.Array,
    values: pa.Array,
    parents: np.ndarray,
    nseries: int,
    describe: Callable[[int], str],
) -> tuple[pa.Table, np.ndarray, pa.Array]:
    """Flat labels (``parents[i]`` = the input series of label ``i``, any order) → series table.

    Sorts each series' labels by name, drops empty values, rejects duplicate names, missing or
    empty ``__name__`` and empty names (``describe(series_index)`` names the culprit in the
    :class:`ValueError`), and merges repeated series. Returns ``(series table, ref, keys)``:
    ``ref[i]`` is the row of input series ``i`` in the table, ``keys[row]`` a binary identity of
    the row's label set (stable across requests, used as the delta-to-cumulative state key).
    """
    names = names.cast(pa.string())
    values = values.cast(pa.string())
    parents = np.asarray(parents, np.int64)
    order = pc.sort_indices(
        pa.table({"p": parents, "n": names}), sort_keys=[("p", "ascending"), ("n", "ascending")]
    ).to_numpy()
    parents = parents[order]
    names = names.take(order)
    values = values.take(order)
    name_np = names.to_numpy(zero_copy_only=False)  # object array, but only compared vectorized
    if len(name_np):
        empty = np.flatnonzero(pc.equal(pc.binary_length(names), 0).to_numpy(zero_copy_only=False))
        if empty.size:
            raise ValueError(f"{describe(int(parents[empty[0]]))}: empty label name")
        dup = np.flatnonzero((parents[1:] == parents[:-1]) & (name_np[1:] == name_np[:-1]))
        if dup.size:
            i = int(dup[0])
            raise ValueError(f"{describe(int(parents[i]))}: duplicate label name {name_np[i]!r}")
    is_name = (name_np == METRIC_NAME) if len(name_np) else np.zeros(0, bool)
    has_name = np.zeros(nseries, bool)
    has_name[parents[is_name]] = True
    missing = np.flatnonzero(~has_name)
    if missing.size:
        raise ValueError(f"{describe(int(missing[0]))}: no {METRIC_NAME} label (metric name)")
    keep = pc.not_equal(pc.binary_length(values), 0).to_numpy(zero_copy_only=False)
    if not keep[is_name].all():
        bad = int(parents[np.flatnonzero(is_name & ~keep)[0]])
        raise ValueError(f"{describe(bad)}: empty metric name ({METRIC_NAME} label value)")
    if not keep.all():
        idx = np.flatnonzero(keep)
        parents, names, values = parents[idx], names.take(idx), values.take(idx)
    new_offsets = np.zeros(nseries + 1, np.int64)
    np.cumsum(np.bincount(parents, minlength=nseries), out=new_offsets[1:])
    return _dedupe(names, values, new_offsets)


def _dedupe(names: pa.Array, values: pa.Array, offsets: np.ndarray) -> tuple[pa.Table, np.ndarray, pa.Array]:
    """Merge identical label sets: key each series by its joined labels, dictionary-encode."""
    nseries = len(offsets) - 1
    nlabels = len(names)
    structs = pa.StructArray.from_arrays([names, values], fields=list(LABEL))
    lists = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), structs, type=LABELS)
    inter = np.empty(2 * nlabels, np.int64)
    inter[0::2] = np.arange(nlabels)
    inter[1::2] = nlabels + np.arange(nlabels)
    both = pa.concat_arrays([names.cast(pa.binary()), values.cast(pa.binary())]).take(inter)
    # 0xff never occurs in UTF-8, so the joined key is unambiguous
    keys = pc.binary_join(pa.ListArray.from_arrays(pa.array((2 * offsets).astype(np.int32)), both), b"\xff")
    encoded = pc.dictionary_encode(keys)
    ref = encoded.indices.to_numpy().astype(np.int64)
    ndistinct = len(encoded.dictionary)
    if ndistinct == nseries:
        return pa.Table.from_arrays([lists], schema=SERIES_SCHEMA), ref, encoded.dictionary
    first = np.empty(ndistinct, np.int64)
    first[ref[::-1]] = np.arange(nseries - 1, -1, -1)  # first occurrence of each distinct key
    return pa.Table.from_arrays([lists.take(first)], schema=SERIES_SCHEMA), ref, encoded.dictionary


def samples_table(ref: np.ndarray, t: pa.Array | np.ndarray, v: pa.Array | np.ndarray) -> pa.Table:
    """The samples table; ``v`` passes through untouched so StaleNaN bit patterns survive."""
    return pa.Table.from_arrays(
        [pa.array(ref.astype(np.uint32)), pa.array(t, pa.int64()), pa.array(v, pa.float64())],
        schema=SAMPLE_SCHEMA,
    )


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


def _decompress(body: bytes, max_decompressed: int) -> bytes:
    """Snappy block format; the declared length is checked before any memory is allocated."""
    try:
        length = snappy.declared_length(body)
    except ValueError as e:
        raise RemoteWriteError(f"invalid snappy body: {e}") from None
    if length > max_decompressed:
        raise RemoteWriteError(f"snappy body decompresses to {length} bytes, over the limit of {max_decompressed}")
    try:
        return bytes(cramjam.snappy.decompress_raw(body))
    except Exception as exc:  # cramjam.DecompressionError
        raise RemoteWriteError(f"invalid snappy (block format) body: {exc}") from exc


def _utf8(arr: pa.Array, what: Callable[[int], str]) -> pa.Array:
    """binary → string; on invalid UTF-8 find the first bad element (error path only)."""
    try:
        return arr.cast(pa.string())
    except pa.ArrowInvalid:
        for i, raw in enumerate(arr.to_pylist()):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                raise RemoteWriteError(f"{what(i)} is not valid UTF-8: {raw!r}") from None
        raise


def _metadata(meta: pa.Array) -> list[MetricMetadata]:
    """Metadata entries are few (one per metric family), so plain Python is fine here."""
    out = []
    for i, row in enumerate(meta.to_pylist()):
        try:
            name, help_, unit = (row[k].decode("utf-8") for k in ("metric_family_name", "help", "unit"))
        except UnicodeDecodeError:
            raise RemoteWriteError(f"metadata[{i}] is not valid UTF-8") from None
        out.append(MetricMetadata(name, prompb.METRIC_TYPE_NAMES.get(row["type"], "unknown"), unit, help_))
    return out


def decode_write_request_counted(
    body: bytes, *, compressed: bool = True, max_decompressed: int = DEFAULT_MAX_DECOMPRESSED
) -> tuple[MetricBatch, dict[str, int]]:
    """Like :func:`decode_write_request`, plus ``{reason: count}`` of what was not kept.

    Today the only reason is :data:`REFUSED_NATIVE_HISTOGRAMS` (native histogram samples).
    """
    data = _decompress(body, max_decompressed) if compressed else body
    try:
        record = _handler().list_to_record_batch([data])
    except Exception as exc:  # ptars raises plain ValueError/RuntimeError on bad input
        raise RemoteWriteError(f"invalid protobuf prometheus.WriteRequest: {exc}") from exc
    ts = pc.list_flatten(record.column("timeseries"))
    label_lists = ts.field("labels")
    offsets = list_offsets(label_lists)
    flat = pc.list_flatten(label_lists)
    lparents = parents_from_offsets(offsets)

    def label_at(kind: str) -> Callable[[int], str]:
        def what(j: int) -> str:
            s = int(lparents[j])
            return f"timeseries[{s}].labels[{j - int(offsets[s])}].{kind}"

        return what

    names = _utf8(flat.field("name"), label_at("name"))
    values = _utf8(flat.field("value"), label_at("value"))
    try:
        series, ref, _ = canonical_series(names, values, lparents, len(ts), lambda s: f"timeseries[{s}]")
    except ValueError as exc:
        raise RemoteWriteError(str(exc)) from None

    sample_lists = ts.field("samples")
    samples = pc.list_flatten(sample_lists)
    sref = ref[parents_from_offsets(list_offsets(sample_lists))]
    batch = MetricBatch(
        series,
        samples_table(sref, samples.field("timestamp"), samples.field("value")),
        _exemplars(ts.field("exemplars"), ref),
        _metadata(pc.list_flatten(record.column("metadata"))),
    )
    refused = {}
    nhist = int(pc.sum(pc.list_value_length(ts.field("histograms"))).as_py() or 0)
    if nhist:
        refused[REFUSED_NATIVE_HISTOGRAMS] = nhist
    return batch, refused


def _exemplars(ex_lists: pa.ListArray, ref: np.ndarray) -> pa.Table:
    ex = pc.list_flatten(ex_lists)
    if len(ex) == 0:
        return EXEMPLAR_SCHEMA.empty_table()
    eparents = parents_from_offsets(list_offsets(ex_lists))
    lab_lists = ex.field("labels")
    loffs = list_offsets(lab_lists)
    flat = pc.list_flatten(lab_lists)
    lpar = parents_from_offsets(loffs)

    def what(kind: str) -> Callable[[int], str]:
        return lambda j: f"timeseries[{int(eparents[lpar[j]])}].exemplars[..].labels[..].{kind}"

    items = pa.StructArray.from_arrays(
        [_utf8(flat.field("name"), what("name")), _utf8(flat.field("value"), what("value"))], fields=list(LABEL)
    )
    labels = pa.ListArray.from_arrays(pa.array(loffs.astype(np.int32)), items, type=LABELS)
    return pa.Table.from_arrays(
        [pa.array(ref[eparents].astype(np.uint32)), ex.field("timestamp"), ex.field("value"), labels],
        schema=EXEMPLAR_SCHEMA,
    )


def decode_write_request(
    body: bytes, *, compressed: bool = True, max_decompressed: int = DEFAULT_MAX_DECOMPRESSED
) -> MetricBatch:
    """A remote write 1.0 body (snappy block-compressed unless ``compressed=False``) → batch.

    Raises :class:`RemoteWriteError` naming the problem: bad snappy, over-large body, bad
    protobuf, invalid UTF-8, empty label name, duplicate label name, missing/empty metric name.
    Native histogram samples are skipped (see :func:`decode_write_request_counted`).
    """
    return decode_write_request_counted(body, compressed=compressed, max_decompressed=max_decompressed)[0]


# --------------------------------------------------------------------------------------------
# Encoding (clients, tests, benchmarks)
# --------------------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _length_delimited(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + _varint(len(payload)) + payload


def _encode_labels(labels: dict[str, str]) -> bytes:
    parts = []
    for name, value in sorted(labels.items()):
        if value == "":
            continue  # an empty value means "no such label"; senders must not send it
        body = _length_delimited(0x0A, name.encode()) + _length_delimited(0x12, value.encode())
        parts.append(_length_delimited(0x0A, body))
    return b"".join(parts)


def _encode_samples(t: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All samples as ``TimeSeries.samples`` fields, vectorized: (bytes, offsets per sample).

    Each is ``0x12 len 0x09 <double LE> 0x10 <varint t>``; the value's bits are copied as-is
    (StaleNaN survives) and written even when 0.0 (proto3 parsers accept explicit defaults).
    """
    n = len(t)
    ut = t.astype(np.int64).view(np.uint64)
    vlen = np.ones(n, np.int64)
    for k in range(1, 10):
        vlen += ut >= np.uint64(1 << (7 * k))
    size = 12 + vlen
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(size, out=offsets[1:])
    out = np.zeros(int(offsets[-1]), np.uint8)
    start = offsets[:-1]
    out[start] = 0x12
    out[start + 1] = (10 + vlen).astype(np.uint8)
    out[start + 2] = 0x09
    vbytes = np.ascontiguousarray(v, dtype="<f8").view(np.uint8).reshape(n, 8)
    for k in range(8):
        out[start + 3 + k] = vbytes[:, k]
    out[start + 11] = 0x10
    for k in range(int(vlen.max()) if n else 0):
        sel = vlen > k
        byte = (ut[sel] >> np.uint64(7 * k)) & np.uint64(0x7F)
        more = (vlen[sel] > k + 1).astype(np.uint64) << np.uint64(7)
        out[start[sel] + 12 + k] = (byte | more).astype(np.uint8)
    return out, offsets


def _encode_metadata(metadata: Iterable[MetricMetadata]) -> bytes:
    cls = prompb.message_class("MetricMetadata")
    parts = []
    for m in metadata:
        msg = cls(
            type=prompb.METRIC_TYPES.get(m.type, 0),
            metric_family_name=m.metric.encode(),
            help=m.help.encode(),
            unit=m.unit.encode(),
        )
        parts.append(_length_delimited(0x1A, msg.SerializeToString()))
    return b"".join(parts)


Exemplar = tuple[dict[str, str], float, int]
"""An exemplar to write: (labels such as ``trace_id``/``span_id``, value, timestamp ms)."""


def _encode_exemplar(ex: Exemplar) -> bytes:
    labels, value, t_ms = ex
    body = _encode_labels(labels) + b"\x11" + struct.pack("<d", value) + b"\x18" + _varint(t_ms)
    return _length_delimited(0x1A, body)


def encode_write_request_raw(
    series: Sequence[tuple[dict[str, str], np.ndarray, np.ndarray]],
    metadata: Sequence[MetricMetadata] | None = None,
    exemplars: Sequence[Sequence[Exemplar]] | None = None,
) -> bytes:
    """The uncompressed ``WriteRequest`` protobuf of :func:`encode_write_request`; ``exemplars``
    (one list per series, when given) become each series' ``exemplars`` field."""
    counts = np.array([len(t) for _, t, _ in series], np.int64)
    if series:
        t_all = np.concatenate([np.asarray(t, np.int64) for _, t, _ in series])
        v_all = np.concatenate([np.asarray(v, np.float64) for _, _, v in series])
        if len(t_all) != len(v_all):
            raise ValueError("every series needs as many values as timestamps")
    else:
        t_all, v_all = np.empty(0, np.int64), np.empty(0, np.float64)
    data, soffs = _encode_samples(t_all, v_all)
    bounds = soffs[np.concatenate([[0], np.cumsum(counts)])]
    raw = data.tobytes()
    parts = []
    for i, (labels, _, _) in enumerate(series):
        body = _encode_labels(labels) + raw[bounds[i] : bounds[i + 1]]
        if exemplars is not None and exemplars[i]:
            body += b"".join(_encode_exemplar(ex) for ex in exemplars[i])
        parts.append(b"\x0a" + _varint(len(body)) + body)
    parts.append(_encode_metadata(metadata or ()))
    return b"".join(parts)


def encode_write_request(
    series: list[tuple[dict[str, str], np.ndarray, np.ndarray]],
    metadata: list[MetricMetadata] | None = None,
    exemplars: Sequence[Sequence[Exemplar]] | None = None,
) -> bytes:
    """Snappy-compressed remote write 1.0 body: per series ``(labels, t ms int64, v float64)``.

    Labels are sorted (empty values omitted); values are written bit-exactly (stale markers).
    """
    return bytes(cramjam.snappy.compress_raw(encode_write_request_raw(series, metadata, exemplars)))
