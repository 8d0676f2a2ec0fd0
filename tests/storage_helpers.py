"""Small tables and a block writer shared by the storage tests."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from lookout.storage.blocks import BlockStore

HOUR_NS = 3600 * 1_000_000_000
T0 = 1_700_000_000 * 1_000_000_000  # 2023-11-14T22:13:20Z
SORT = [("key", "ascending"), ("ts", "ascending")]


def make_table(n: int, *, seed: int = 0, t0: int = T0, span_ns: int = 10_000_000_000) -> pa.Table:
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    keys[:, 0] = rng.integers(0, 8, size=n)  # some shared prefixes
    ts = t0 + rng.integers(0, span_ns, size=n)
    return pa.table(
        {
            "key": pa.array([k.tobytes() for k in keys], pa.binary(16)),
            "ts": pa.array(ts, pa.int64()),
            "v": pa.array([f"val-{i % 7}" for i in range(n)]),
        }
    )


def write(store: BlockStore, table: pa.Table, *, tenant="t1", signal="traces", lo=0, hi=10, **kw):
    kw.setdefault("row_group_rows", 100)
    return store.write_block(
        tenant,
        signal,
        table,
        sort_keys=SORT,
        time_column="ts",
        key_column="key",
        source={"kind": "wal", "offset_lo": lo, "offset_hi": hi},
        **kw,
    )
