"""Reading metric blocks: the per-block series index and the samples of selected series.

A block's ``series.parquet`` sidecar says, per series, its labels and where its rows are in the
(series_id, t)-sorted data file. Selection runs on :class:`BlockPostings` built from it; reading
then maps the selected row ranges to the Parquet row groups that hold them (also pruned by the
row groups' time range from ``meta.json``) and reads only ``t``/``v`` of those row groups.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lookout.metrics.postings import BlockPostings
from lookout.metrics.schema import (
    EXEMPLARS_SIDECAR,
    EXEMPLARS_TABLE_SCHEMA,
    METADATA_SIDECAR,
    SAMPLES_SCHEMA,
    SERIES_SIDECAR,
    SERIES_TABLE_SCHEMA,
    metadata_from_json,
    metadata_to_json,
    parquet_bytes_to_table,
    table_to_parquet_bytes,
)
from lookout.storage.blocks import BlockMeta, BlockStore

NS_PER_MS = 1_000_000


@dataclass(slots=True)
class BlockIndex:
    """The series table of one block, as arrays, plus its lazily built postings."""

    meta: BlockMeta
    series_id: np.ndarray  # uint64, ascending
    labels: pa.ListArray
    row_start: np.ndarray
    rows: np.ndarray
    min_t: np.ndarray  # ms
    max_t: np.ndarray
    rg_start: np.ndarray  # global first row of every row group (all files, in order)
    rg_file: np.ndarray  # which data file
    rg_local: np.ndarray  # row group number inside that file
    rg_min_t: np.ndarray  # ms
    rg_max_t: np.ndarray
    _postings: BlockPostings | None = field(default=None)

    @property
    def postings(self) -> BlockPostings:
        if self._postings is None:
            self._postings = BlockPostings(self.labels)
        return self._postings

    def label_dicts(self, rows: np.ndarray) -> list[dict[str, str]]:
        """Label dicts of some series rows (for results: per selected series only)."""
        return [{p["name"]: p["value"] for p in lst} for lst in self.labels.take(pa.array(rows)).to_pylist()]

    def in_range(self, start_ms: int, end_ms: int) -> np.ndarray:
        return (self.max_t >= start_ms) & (self.min_t <= end_ms)


def load_index(store: BlockStore, meta: BlockMeta) -> BlockIndex:
    table = parquet_bytes_to_table(store.read_sidecar(meta, SERIES_SIDECAR))
    labels = table.column("labels").combine_chunks()
    starts, files, locals_, mins, maxs = [], [], [], [], []
    row = 0
    for fi, f in enumerate(meta.files):
        for gi, rg in enumerate(f["row_groups"]):
            starts.append(row)
            files.append(fi)
            locals_.append(gi)
            mins.append(_ns_to_ms_floor(rg["min_time"]))
            maxs.append(_ns_to_ms_floor(rg["max_time"]))
            row += rg["rows"]

    def col(name: str, dtype: type) -> np.ndarray:
        return np.asarray(table.column(name).to_numpy(), dtype=dtype)

    return BlockIndex(meta, col("series_id", np.uint64), labels, col("row_start", np.int64), col("rows", np.int64),
                      col("min_t", np.int64), col("max_t", np.int64), np.asarray(starts, np.int64),
                      np.asarray(files, np.int64), np.asarray(locals_, np.int64), np.asarray(mins, np.int64),
                      np.asarray(maxs, np.int64))


def _ns_to_ms_floor(ns: int) -> int:
    return int(ns) // NS_PER_MS


def read_samples(store: BlockStore, idx: BlockIndex, rows: np.ndarray, start_ms: int,
                 end_ms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Samples of the series rows ``rows`` in ``[start_ms, end_ms]``: (series_id, t, v) sorted
    by (series_id, t). Reads only the row groups that hold those rows and overlap the range,
    then slices each series' rows out (binary search on its sorted times), without expanding
    row numbers: the Python work is per selected series, never per sample."""
    empty = (np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0, np.float64))
    rows = rows[idx.in_range(start_ms, end_ms)[rows]]
    if not len(rows):
        return empty
    lo = idx.row_start[rows]
    hi = lo + idx.rows[rows]
    first = np.searchsorted(idx.rg_start, lo, "right") - 1
    last = np.searchsorted(idx.rg_start, hi - 1, "right") - 1
    mark = np.zeros(len(idx.rg_start) + 1, np.int64)
    np.add.at(mark, first, 1)
    np.add.at(mark, last + 1, -1)
    wanted = (np.cumsum(mark[:-1]) > 0) & (idx.rg_max_t >= start_ms) & (idx.rg_min_t <= end_ms)
    if not wanted.any():
        return empty
    t_all, v_all, read_off = _read_row_groups(store, idx, np.flatnonzero(wanted))
    shift = idx.rg_start - read_off  # global row -> position, within a run of read row groups
    sids, ts, vs = [], [], []
    for s, a, b, f, la in zip(idx.series_id[rows].tolist(), lo.tolist(), hi.tolist(), first.tolist(),
                              last.tolist(), strict=True):
        for pa_, pb in _pieces(a, b, f, la, wanted, shift, idx.rg_start):
            tt = t_all[pa_:pb]
            i0, i1 = np.searchsorted(tt, start_ms, "left"), np.searchsorted(tt, end_ms, "right")
            if i1 > i0:
                sids.append((s, i1 - i0))
                ts.append(tt[i0:i1])
                vs.append(v_all[pa_ + i0:pa_ + i1])
    if not ts:
        return empty
    sid = np.repeat(np.array([s for s, _ in sids], np.uint64), [n for _, n in sids])
    return sid, np.concatenate(ts), np.concatenate(vs)


def _pieces(a: int, b: int, first: int, last: int, wanted: np.ndarray, shift: np.ndarray,
            rg_start: np.ndarray) -> list[tuple[int, int]]:
    """Positions (in the read row groups) of global rows ``[a, b)``: one slice when all its row
    groups were read, else one per read row group (the others were pruned by time)."""
    if first == last or wanted[first:last + 1].all():
        return [(a - int(shift[first]), b - int(shift[first]))] if wanted[first] else []
    out = []
    for g in range(first, last + 1):
        if wanted[g]:
            ga = max(a, int(rg_start[g]))
            gb = b if g + 1 >= len(rg_start) else min(b, int(rg_start[g + 1]))
            out.append((ga - int(shift[g]), gb - int(shift[g])))
    return out


def _read_row_groups(store: BlockStore, idx: BlockIndex,
                     groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``t`` (ms) and ``v`` of the given global row groups, concatenated, and for every global
    row group its offset in that concatenation (-1 when not read)."""
    paths = store.data_files(idx.meta)
    read_off = np.full(len(idx.rg_start), -1, np.int64)
    ts, vs = [], []
    at = 0
    for fi in np.unique(idx.rg_file[groups]).tolist():
        mine = groups[idx.rg_file[groups] == fi]
        pf = pq.ParquetFile(paths[fi], filesystem=store.filesystem)
        table = pf.read_row_groups(idx.rg_local[mine].tolist(), columns=["t", "v"], use_threads=False)
        for g in mine.tolist():
            read_off[g] = at
            at += int(idx.meta.files[fi]["row_groups"][int(idx.rg_local[g])]["rows"])
        ts.append(_ms(table.column("t")))
        vs.append(np.asarray(table.column("v").to_numpy(), dtype=np.float64))
    return np.concatenate(ts), np.concatenate(vs), read_off


def _ms(col: pa.ChunkedArray) -> np.ndarray:
    """A Parquet ``TIMESTAMP(MILLIS)`` (or int64) column as int64 milliseconds."""
    if pa.types.is_timestamp(col.type):
        if col.type.unit != "ms":
            col = pc.cast(col, pa.timestamp("ms"))
        col = pc.cast(col, pa.int64())
    return np.asarray(col.to_numpy(), dtype=np.int64)


def read_all_samples(store: BlockStore, meta: BlockMeta) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every sample of a block (compaction): (series_id, t ms, v)."""
    sids, ts, vs = [], [], []
    for path in store.data_files(meta):
        table = pq.read_table(path, filesystem=store.filesystem)
        sids.append(np.asarray(table.column("series_id").to_numpy(), dtype=np.uint64))
        ts.append(_ms(table.column("t")))
        vs.append(np.asarray(table.column("v").to_numpy(), dtype=np.float64))
    return np.concatenate(sids), np.concatenate(ts), np.concatenate(vs)


def read_exemplars(store: BlockStore, meta: BlockMeta) -> pa.Table:
    if EXEMPLARS_SIDECAR not in meta.sidecars:
        return EXEMPLARS_TABLE_SCHEMA.empty_table()
    return parquet_bytes_to_table(store.read_sidecar(meta, EXEMPLARS_SIDECAR)).cast(EXEMPLARS_TABLE_SCHEMA)


def read_metadata(store: BlockStore, meta: BlockMeta) -> dict[str, dict[str, str]]:
    if METADATA_SIDECAR not in meta.sidecars:
        return {}
    return metadata_from_json(store.read_sidecar(meta, METADATA_SIDECAR))


# ---- writing ----------------------------------------------------------------------------------


def build_sidecars(table: pa.Table, label_sids: np.ndarray, labels: pa.ListArray,
                   exemplars: pa.Table | None, metadata: dict[str, dict[str, str]]) -> dict[str, bytes]:
    """The sidecars of a block whose data is ``table`` (already sorted by (series_id, t), as
    :meth:`BlockStore.write_block` hands it over). ``labels[i]`` are the labels of series
    ``label_sids[i]`` (ascending); it may hold more series than the block."""
    sid = np.asarray(table.column("series_id").to_numpy(), dtype=np.uint64)
    t = _ms(table.column("t"))
    n = len(sid)
    first = np.ones(n, dtype=bool)
    first[1:] = sid[1:] != sid[:-1]
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], n)
    uniq = sid[starts]
    at = np.searchsorted(label_sids, uniq)
    if len(uniq) and (at.max() >= len(label_sids) or not np.array_equal(label_sids[at], uniq)):
        raise ValueError("build_sidecars: a series of the block has no labels")
    series = pa.table({
        "series_id": pa.array(uniq, pa.uint64()),
        "labels": labels.take(pa.array(at)),
        "row_start": pa.array(starts, pa.int64()),
        "rows": pa.array(ends - starts, pa.int64()),
        "min_t": pa.array(t[starts], pa.int64()),
        "max_t": pa.array(t[ends - 1], pa.int64()),
    }, schema=SERIES_TABLE_SCHEMA)
    out = {SERIES_SIDECAR: table_to_parquet_bytes(series), METADATA_SIDECAR: metadata_to_json(metadata)}
    if exemplars is not None and exemplars.num_rows:
        out[EXEMPLARS_SIDECAR] = table_to_parquet_bytes(exemplars)
    return out


def samples_table(sid: np.ndarray, t_ms: np.ndarray, v: np.ndarray) -> pa.Table:
    """The block data table; ``t`` becomes ``timestamp[ns]`` for the BlockStore's time range
    (the writer stores milliseconds)."""
    return pa.table({
        "series_id": pa.array(sid, pa.uint64()),
        "t": pa.array(t_ms * NS_PER_MS, pa.timestamp("ns")),
        "v": pa.array(v, pa.float64()),
    }, schema=SAMPLES_SCHEMA)


def order_unique(k: np.ndarray, t: np.ndarray, keep: str) -> np.ndarray:
    """Indexes sorting by (k, t) with one row per equal (k, t): the ``first`` or ``last`` in
    input order. ``k`` is a small dense series number: when k and t fit 62 bits together the
    sort is a single stable argsort of one int64 key (fast on the presorted runs the inputs
    are made of), else a lexsort."""
    n = len(k)
    if n == 0:
        return np.zeros(0, np.int64)
    tmin = int(t.min())
    kbits = max(int(k.max()).bit_length(), 1)
    tbits = max((int(t.max()) - tmin).bit_length(), 1)
    if kbits + tbits <= 62:
        key = (k.astype(np.int64) << tbits) | (t - tmin)
        order = np.argsort(key, kind="stable")
        ks = key[order]
        diff = ks[1:] != ks[:-1]
    else:
        order = np.lexsort((t, k))
        kk, tt = k[order], t[order]
        diff = (kk[1:] != kk[:-1]) | (tt[1:] != tt[:-1])
    sel = np.ones(n, dtype=bool)
    if keep == "first":
        sel[1:] = diff
    else:
        sel[:-1] = diff
    return order[sel]


def dense_series(sid: np.ndarray) -> np.ndarray:
    """A dense number per series id for arrays where each id's rows are in runs (per part)."""
    if not len(sid):
        return np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]])
    run_sid = sid[starts]
    uniq = np.unique(run_sid)
    lengths = np.diff(np.r_[starts, len(sid)])
    return np.repeat(np.searchsorted(uniq, run_sid), lengths)


def dedupe_first(sid: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Indexes that sort by (series_id, t) keeping the first (earliest) row of each equal pair."""
    order = np.lexsort((t, sid))
    if len(order) < 2:
        return order
    s, tt = sid[order], t[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (s[1:] != s[:-1]) | (tt[1:] != tt[:-1])
    return order[first]


def merge_label_tables(parts: list[tuple[np.ndarray, pa.ListArray]]) -> tuple[np.ndarray, pa.ListArray]:
    """Union of (series_id, labels) pairs, by series_id, ascending."""
    if not parts:
        return np.zeros(0, np.uint64), pa.array([], SERIES_TABLE_SCHEMA.field("labels").type)
    sids = np.concatenate([p[0] for p in parts])
    labels = pa.concat_arrays([p[1] for p in parts])
    uniq, first = np.unique(sids, return_index=True)
    return uniq, labels.take(pa.array(first))


def meta_time_overlaps(meta: BlockMeta, start_ms: int, end_ms: int) -> bool:
    return meta.max_time_ns // NS_PER_MS >= start_ms and meta.min_time_ns // NS_PER_MS <= end_ms
