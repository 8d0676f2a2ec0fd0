"""Micro-benchmark of the metrics store, in-process: append throughput, block bytes per sample,
select latency. Prints figures; no assertions.

    .venv/bin/python bench/bench_metrics_store.py [--series 1000] [--samples 5760]

Data: ``--series`` series scraped every 15 s for ``--samples`` scrapes (5760 = one day), half
counters (integer increments, Poisson with a per-series rate) and half gauges that change on
~10% of scrapes (integers like byte counts, or 2-decimal floats). Timestamps are exact multiples
of 15 s ("regular") or jittered by up to ±25 ms ("jittered").
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lookout.config import Storage
from lookout.metrics.batch import LABELS, SAMPLE_SCHEMA, SERIES_SCHEMA, MetricBatch
from lookout.metrics.model import Matcher
from lookout.metrics.store import MetricsStore
from lookout.selfmon.registry import Registry
from lookout.storage.blocks import BlockStore

_ROOTS: list[Path] = []  # removed at exit
T0 = 1_700_000_000_000 - (1_700_000_000_000 % 86_400_000)  # a UTC midnight, so a day is one block


def make_series(n: int) -> pa.Table:
    rows = []
    for i in range(n):
        kind = "counter" if i % 2 == 0 else "gauge"
        labels = {"__name__": f"node_{kind}_{i // 20}", "instance": f"host-{i % 10}:9100", "job": "node",
                  "cpu": str(i % 20 // 2)}
        rows.append([{"name": k, "value": v} for k, v in sorted(labels.items())])
    return pa.table({"labels": pa.array(rows, LABELS)}, schema=SERIES_SCHEMA)


def make_values(n_series: int, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """(n_series, n_samples) values: even rows counters, odd rows gauges."""
    v = np.empty((n_series, n_samples), np.float64)
    for i in range(n_series):
        if i % 2 == 0:
            rate = rng.uniform(0.1, 50)
            v[i] = rng.integers(0, 10**6) + np.cumsum(rng.poisson(rate, n_samples))
        else:
            change = rng.random(n_samples) < 0.1
            steps = np.where(change, rng.normal(0, 1, n_samples), 0.0)
            if i % 4 == 1:
                v[i] = np.round(rng.integers(10**8, 10**9) + np.cumsum(steps * 4096))
            else:
                v[i] = np.round(40 + np.cumsum(steps), 2)
    return v


def timestamps(n_series: int, n_samples: int, jitter_ms: int, rng: np.random.Generator) -> np.ndarray:
    base = T0 + np.arange(n_samples, dtype=np.int64) * 15_000
    t = np.broadcast_to(base, (n_series, n_samples)).copy()
    if jitter_ms:
        t += rng.integers(-jitter_ms, jitter_ms + 1, size=t.shape)
    return t


def batches(series: pa.Table, t: np.ndarray, v: np.ndarray, per_batch: int) -> list[MetricBatch]:
    """Remote-write-like batches: every series, ``per_batch`` consecutive scrapes each."""
    n_series, n_samples = t.shape
    out = []
    for s0 in range(0, n_samples, per_batch):
        s1 = min(s0 + per_batch, n_samples)
        k = s1 - s0
        refs = np.repeat(np.arange(n_series, dtype=np.uint32), k)
        sm = pa.table({"ref": pa.array(refs), "t": pa.array(t[:, s0:s1].ravel()),
                       "v": pa.array(v[:, s0:s1].ravel())}, schema=SAMPLE_SCHEMA)
        out.append(MetricBatch(series, sm))
    return out


def new_store(root: Path, row_group_rows: int = 32768) -> MetricsStore:
    _ROOTS.append(root)
    cfg = Storage(row_group_rows=row_group_rows, retention=0)
    return MetricsStore(BlockStore(root, fsync=False), cfg, Registry())


def data_bytes(store: MetricsStore, metas) -> tuple[int, int]:
    data = sum(f["bytes"] for m in metas for f in m.files)
    return data, sum(m.stored_bytes for m in metas)


def bench_append(series: pa.Table, t: np.ndarray, v: np.ndarray, per_batch: int) -> tuple[float, MetricsStore, Path]:
    root = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    store = new_store(root)
    bs = batches(series, t, v, per_batch)
    n = sum(b.num_samples for b in bs)
    started = time.perf_counter()
    for b in bs:
        st = store.append("bench", b)
        assert st.accepted == b.num_samples, st
    return n / (time.perf_counter() - started), store, root


def bytes_per_sample(series: pa.Table, t: np.ndarray, v: np.ndarray, rows: list[int] | None = None,
                     row_group_rows: int = 32768, label: str = "") -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    store = new_store(root, row_group_rows)
    idx = np.arange(t.shape[0]) if rows is None else np.asarray(rows)
    sub = series.take(pa.array(idx))
    (b,) = batches(sub, t[idx], v[idx], t.shape[1])
    store.append("bench", b)
    res = store.flush(lambda off: None)
    data, total = data_bytes(store, res.blocks)
    n = b.num_samples
    print(f"  {label:<44} {data / n:6.3f} B/sample data   {total / n:6.3f} B/sample with sidecars"
          f"   ({n:,} samples, row groups of {row_group_rows:,})")


def column_sizes(store: MetricsStore) -> str:
    meta = store.blocks.list_blocks("bench", "metrics")[0]
    md = pq.ParquetFile(store.blocks.data_files(meta)[0]).metadata
    sizes: dict[str, int] = {}
    for rg in range(md.num_row_groups):
        for c in range(md.num_columns):
            col = md.row_group(rg).column(c)
            sizes[col.path_in_schema] = sizes.get(col.path_in_schema, 0) + col.total_compressed_size
    n = md.num_rows
    return ", ".join(f"{k} {b / n:.3f}" for k, b in sizes.items())


def timed(fn, repeat: int = 5) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - started)
    return best * 1000, out


def bench_select(store: MetricsStore, where: str) -> None:
    q = store.querier("bench")
    end = T0 + 86_400_000
    cases = [
        ("one series  {__name__=m,instance=i}", [Matcher("__name__", "=", "node_counter_3"),
                                                  Matcher("instance", "=", "host-0:9100")]),
        ("one metric  {__name__=m} (20 series)", [Matcher("__name__", "=", "node_gauge_7")]),
        ("regex       {__name__=~node_counter_1.*}", [Matcher("__name__", "=~", "node_counter_1.*")]),
        ("negative    {job=node,cpu!=3}", [Matcher("job", "=", "node"), Matcher("cpu", "!=", "3")]),
    ]
    for name, ms in cases:
        for rng_name, start in (("1h", end - 3_600_000), ("24h", T0)):
            ms_, got = timed(lambda ms=ms, start=start: q.select(ms, start, end))
            samples = sum(len(s.t) for s in got)
            print(f"  {where:<6} {name:<42} {rng_name:>3}: {ms_:7.2f} ms  ({len(got)} series, {samples:,} samples)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=5760)
    args = ap.parse_args()
    rng = np.random.default_rng(42)
    series = make_series(args.series)
    v = make_values(args.series, args.samples, rng)
    t_reg = timestamps(args.series, args.samples, 0, rng)
    t_jit = timestamps(args.series, args.samples, 25, rng)
    total = args.series * args.samples
    print(f"metrics store bench: {args.series} series x {args.samples} samples = {total:,} samples")

    print("append throughput (in-process, one tenant):")
    for per_batch in (1, 10, 120):
        rate, store, _ = bench_append(series, t_reg, v, per_batch)
        print(f"  batches of {args.series} series x {per_batch:>3} samples: {rate / 1e6:6.2f} M samples/s "
              f"(head {store.head_bytes() / total:.1f} B/sample)")

    print("flush: one day-block per data set")
    counters = list(range(0, args.series, 2))
    gauges = list(range(1, args.series, 2))
    for rg in (32768, 262144):
        bytes_per_sample(series, t_reg, v, None, rg, "mix, regular 15 s")
    bytes_per_sample(series, t_reg, v, counters, 262144, "counters, regular 15 s")
    bytes_per_sample(series, t_reg, v, gauges, 262144, "gauges, regular 15 s")
    bytes_per_sample(series, t_jit, v, None, 262144, "mix, jittered ±25 ms")
    hour = 240
    bytes_per_sample(series, t_reg[:, :hour], v[:, :hour], None, 32768, "mix, regular, 1 h block (240/series)")
    bytes_per_sample(series, t_reg[:, :2], v[:, :2], None, 32768, "mix, regular, 30 s L0 block (2/series)")

    rate, store, _ = bench_append(series, t_reg, v, 120)
    print("select latency (best of 5):")
    bench_select(store, "head")
    started = time.perf_counter()
    res = store.flush(lambda off: None)
    print(f"flush of {total:,} samples: {time.perf_counter() - started:.2f} s "
          f"({res.blocks[0].stored_bytes / total:.3f} B/sample; columns B/sample: {column_sizes(store)})")
    bench_select(store, "block")


if __name__ == "__main__":
    try:
        main()
    finally:
        for root in _ROOTS:
            shutil.rmtree(root, ignore_errors=True)
