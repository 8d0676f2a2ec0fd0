"""Compaction: merge the blocks of one tenant and signal per time window into one sorted block.

Crash safety comes from the commit protocol of :mod:`lookout.storage.blocks`:

1. the merged block is written with ``replaces = <inputs>`` and ``meta.json`` last;
2. from the moment its ``meta.json`` exists the inputs are hidden (catalog and any reader that
   honours ``replaces``), so rows are never visible twice;
3. the inputs are deleted; a crash before or during this step leaves hidden inputs that
   :meth:`BlockStore.recover` deletes at the next start.

A crash before step 1 completes leaves a partial directory (no ``meta.json``) that recovery
deletes, while the inputs stay live: nothing is lost. The merged block's id is a hash of its
inputs, so a retried job produces the same id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lookout.storage.blocks import BlockMeta, BlockStore, SidecarBuilder

__all__ = ["compact", "merge_blocks", "dedupe_rows", "read_blocks"]

log = logging.getLogger("lookout.storage")

_ROW = "__lookout_row__"


def read_blocks(store: BlockStore, blocks: Sequence[BlockMeta]) -> pa.Table:
    """All rows of ``blocks`` as one table, in block order (schemas are unified by name)."""
    tables = []
    for m in blocks:
        for path in store.data_files(m):
            tables.append(pq.read_table(path, filesystem=store.fs))
    if not tables:
        raise ValueError("read_blocks: no data files")
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="permissive")


def dedupe_rows(table: pa.Table, columns: Sequence[str], keep: str = "first") -> pa.Table:
    """Drop rows whose ``columns`` equal those of an earlier row (``keep="first"``) or of a later
    row (``keep="last"``). Vectorised: one hash group-by over the key columns."""
    if keep not in ("first", "last"):
        raise ValueError(f"dedupe_rows: keep must be 'first' or 'last', got {keep!r}")
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise ValueError(f"dedupe_rows: columns {missing} not in table")
    n = table.num_rows
    if n <= 1 or not columns:
        return table
    fn = "min" if keep == "first" else "max"
    keyed = table.select(list(columns)).append_column(_ROW, pa.array(np.arange(n, dtype=np.int64)))
    agg = keyed.group_by(list(columns), use_threads=False).aggregate([(_ROW, fn)])
    idx = agg.column(f"{_ROW}_{fn}").to_numpy()
    if len(idx) == n:
        return table
    return table.take(pa.array(np.sort(idx)))


def merge_blocks(
    store: BlockStore,
    inputs: Sequence[BlockMeta],
    *,
    sort_keys: list[tuple[str, str]],
    time_column: str,
    key_column: str,
    sidecars: SidecarBuilder | None = None,
    dedupe_columns: Sequence[str] | None = None,
    dedupe_keep: str = "first",
    level: int | None = None,
    delete_inputs: bool = True,
    row_group_rows: int = 32768,
    compression_level: int = 3,
    max_file_rows: int | None = None,
    writer_options: dict[str, Any] | None = None,
) -> BlockMeta:
    """Merge ``inputs`` (one tenant and signal) into one block that replaces them; then delete
    them unless ``delete_inputs`` is False (they stay hidden, and recover() removes them).

    Rows are concatenated in order of creation (so ``dedupe_keep="last"`` keeps the most recently
    written copy), optionally deduplicated on ``dedupe_columns``, sorted and written at
    ``level`` (default: highest input level + 1)."""
    if not inputs:
        raise ValueError("merge_blocks: no inputs")
    tenants = {(m.tenant, m.signal) for m in inputs}
    if len(tenants) != 1:
        raise ValueError(f"merge_blocks: inputs span several tenants/signals: {sorted(tenants)}")
    tenant, signal = next(iter(tenants))
    ordered = sorted(inputs, key=lambda m: (m.created_at, m.block_id))
    t0 = time.perf_counter()
    table = read_blocks(store, ordered)
    rows_in = table.num_rows
    if dedupe_columns:
        table = dedupe_rows(table, dedupe_columns, dedupe_keep)

    ids = sorted(m.block_id for m in inputs)
    source: dict[str, Any] = {"kind": "compaction", "inputs": ids}
    los = [m.source["offset_lo"] for m in inputs if m.source.get("offset_lo") is not None]
    his = [m.source["offset_hi"] for m in inputs if m.source.get("offset_hi") is not None]
    if los and his:
        source["offset_lo"], source["offset_hi"] = min(los), max(his)

    out = store.write_block(
        tenant,
        signal,
        table,
        sort_keys=sort_keys,
        time_column=time_column,
        key_column=key_column,
        level=level if level is not None else max(m.level for m in inputs) + 1,
        source=source,
        sidecars=sidecars,
        replaces=ids,
        raw_bytes=sum(m.raw_bytes for m in inputs),
        row_group_rows=row_group_rows,
        compression_level=compression_level,
        max_file_rows=max_file_rows,
        writer_options=writer_options,
    )
    if delete_inputs:
        for m in inputs:
            if store.get(m.block_id) is not None:
                store.delete_block(m)
    log.info(
        "storage: compacted %d blocks of %s/%s into %s (L%d, %d -> %d rows, %.3fs)",
        len(inputs),
        tenant,
        signal,
        out.block_id,
        out.level,
        rows_in,
        out.rows,
        time.perf_counter() - t0,
    )
    return out


def compact(
    store: BlockStore,
    tenant: str,
    signal: str,
    *,
    sort_keys: list[tuple[str, str]],
    time_column: str,
    key_column: str,
    sidecars: SidecarBuilder | None = None,
    window_s: int = 3600,
    min_inputs: int = 2,
    max_input_bytes: int = 512 << 20,
    dedupe_columns: Sequence[str] | None = None,
    dedupe_keep: str = "first",
    level: int | None = None,
    sealed_before_ns: int | None = None,
    delete_inputs: bool = True,
    row_group_rows: int = 32768,
    compression_level: int = 3,
    max_file_rows: int | None = None,
    writer_options: dict[str, Any] | None = None,
) -> list[BlockMeta]:
    """Merge the live blocks of ``tenant``/``signal`` window by window (``min_time // window``).

    In each window with at least ``min_inputs`` blocks, blocks are taken lowest level and oldest
    first and grouped so that each group's stored bytes stay within ``max_input_bytes`` (a block
    larger than that on its own is left alone); every group of ``min_inputs`` or more becomes one
    block (see :func:`merge_blocks`). ``sealed_before_ns`` restricts the job to windows that end
    at or before that time. Returns the new blocks."""
    if window_s <= 0:
        raise ValueError("compact: window_s must be positive")
    min_inputs = max(2, int(min_inputs))
    window_ns = int(window_s * 1_000_000_000)
    windows: dict[int, list[BlockMeta]] = {}
    for m in store.list_blocks(tenant, signal):
        windows.setdefault(m.min_time_ns // window_ns, []).append(m)

    out: list[BlockMeta] = []
    for w in sorted(windows):
        if sealed_before_ns is not None and (w + 1) * window_ns > sealed_before_ns:
            continue
        blocks = windows[w]
        if len(blocks) < min_inputs:
            continue
        blocks.sort(key=lambda m: (m.level, m.min_time_ns, m.block_id))
        groups: list[list[BlockMeta]] = []
        cur: list[BlockMeta] = []
        cur_bytes = 0
        for m in blocks:
            if m.stored_bytes > max_input_bytes:
                continue
            if cur and cur_bytes + m.stored_bytes > max_input_bytes:
                groups.append(cur)
                cur, cur_bytes = [], 0
            cur.append(m)
            cur_bytes += m.stored_bytes
        if cur:
            groups.append(cur)
        for g in groups:
            if len(g) < min_inputs:
                continue
            out.append(
                merge_blocks(
                    store,
                    g,
                    sort_keys=sort_keys,
                    time_column=time_column,
                    key_column=key_column,
                    sidecars=sidecars,
                    dedupe_columns=dedupe_columns,
                    dedupe_keep=dedupe_keep,
                    level=level,
                    delete_inputs=delete_inputs,
                    row_group_rows=row_group_rows,
                    compression_level=compression_level,
                    max_file_rows=max_file_rows,
                    writer_options=writer_options,
                )
            )
    return out
