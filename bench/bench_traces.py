"""End-to-end trace benchmark. Prints figures; asserts nothing.

1. Ingest: starts ``lookout serve`` (defaults, temp dir, port 0) and runs bench/loadgen.py in a
   separate process over HTTP and over gRPC. Reports acknowledged spans/s, end-to-end spans/s
   (acknowledged *and* decoded into the queryable head: the clock stops when consumer lag is 0),
   p50/p99 acknowledgement latency, and the server's peak RSS.
2. Size: SIGTERM (drain + flush), then compaction, then bytes per span of all block files.
3. Trace by id: builds a data dir of ``--lookup-spans`` spans (default 10 M) as compacted blocks
   (decoded from generated requests, ids rewritten vectorised so every trace is distinct), starts
   the server over it, and times ``GET /api/traces/<id>`` with no time range.

Usage: python bench/bench_traces.py [--seconds 20] [--runs 3] [--lookup-spans 10000000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.loadgen import build_request  # noqa: E402
from lookout.config import Storage  # noqa: E402
from lookout.otlp import decode_traces  # noqa: E402
from lookout.selfmon.registry import Registry  # noqa: E402
from lookout.storage.blocks import BlockStore  # noqa: E402
from lookout.traces import trace_index  # noqa: E402
from lookout.traces.schema import PARQUET_WRITER_OPTIONS, SORT_KEYS, TIME_COLUMN  # noqa: E402
from lookout.traces.store import TraceStore  # noqa: E402


def start_server(data_dir: Path, extra: dict | None = None) -> tuple[subprocess.Popen, dict]:
    cfg = {"data_dir": str(data_dir), "log_level": "warning",
           "listen": {k: "127.0.0.1:0" for k in ("otlp_grpc", "otlp_http", "http", "health")}}
    cfg.update(extra or {})
    cfg_path = data_dir.parent / f"{data_dir.name}.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen([sys.executable, "-m", "lookout.cli", "serve", "--config", str(cfg_path)], cwd=ROOT)
    ready = data_dir / "listening.json"
    deadline = time.monotonic() + 300
    while not (ready.exists() and json.loads(ready.read_text())["ready"]):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("server did not start")
        time.sleep(0.1)
    return proc, json.loads(ready.read_text())


def metric(addr: dict, name: str) -> float:
    text = httpx.get(f"http://{addr['http']}/metrics", timeout=30).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def ingest_run(transport: str, seconds: float, connections: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        data = Path(d) / "data"
        proc, addr = start_server(data)
        target = addr["otlp_http"] if transport == "http" else addr["otlp_grpc"]
        t0 = time.monotonic()
        gen = subprocess.run([sys.executable, str(ROOT / "bench" / "loadgen.py"), "--transport", transport,
                              "--target", target, "--seconds", str(seconds), "--connections", str(connections)],
                             capture_output=True, text=True, cwd=ROOT, check=True)
        load = json.loads(gen.stdout.strip().splitlines()[-1])
        load_end = time.monotonic()
        while metric(addr, "lookout_log_consumer_lag_bytes") > 0:
            time.sleep(0.05)
        e2e_end = time.monotonic()
        # the loadgen spends its first seconds building requests; time from its own clock
        build_s = (load_end - t0) - load["seconds"]
        e2e_s = e2e_end - t0 - build_s
        rss = peak_rss_mb(proc.pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(300)
        store = TraceStore(BlockStore(data), Storage(compaction_min_blocks=2), Registry())
        store.compact()
        rows = sum(m.rows for m in store.blocks.list_blocks(None, "traces"))
        stored = sum(m.stored_bytes for m in store.blocks.list_blocks(None, "traces"))
        lat = sorted(load["latencies_ms"])
        return {
            "transport": transport,
            "acked_spans_per_s": load["acked_spans"] / load["seconds"],
            "e2e_spans_per_s": load["acked_spans"] / e2e_s,
            "ack_p50_ms": lat[len(lat) // 2] if lat else float("nan"),
            "ack_p99_ms": lat[int(len(lat) * 0.99)] if lat else float("nan"),
            "refused_requests": load["refused"],
            "errors": load["errors"],
            "peak_rss_mb": rss,
            "stored_rows": rows,
            "bytes_per_span": stored / rows if rows else float("nan"),
            "raw_otlp_bytes_per_span": load["request_bytes_avg"] / load["spans_per_request_avg"],
        }


def build_lookup_dataset(data: Path, total_spans: int, rng: random.Random) -> list[bytes]:
    """Compacted blocks of ``total_spans`` distinct spans; returns sample trace ids."""
    base = decode_traces([build_request(rng)[0] for _ in range(100)])  # ~100k real-shaped spans
    store = BlockStore(data)
    samples: list[bytes] = []
    written = 0
    hour_ns = 3600 * 10**9
    t_base = time.time_ns() - 24 * hour_ns
    i = 0
    while written < total_spans:
        batch = []
        for _ in range(max(1, 1_000_000 // base.num_rows)):
            # fresh random trace ids per copy: dictionary-encode, replace the dictionary
            enc = pc.dictionary_encode(base.column("trace_id")).combine_chunks()
            n_ids = len(enc.dictionary)
            new_ids = pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), n_ids,
                                                           [None, pa.py_buffer(os.urandom(16 * n_ids))])
            ids = pc.take(new_ids, enc.indices)
            t = base.set_column(0, "trace_id", ids)
            shift = pa.scalar((i % 24) * hour_ns + (t_base - base.column("start_time_unix_nano")[0].as_py()),
                              pa.int64())
            t = t.set_column(t.schema.get_field_index(TIME_COLUMN), TIME_COLUMN,
                             pc.add(t.column(TIME_COLUMN), shift))
            samples.append(new_ids[rng.randrange(len(new_ids))].as_py())
            batch.append(t)
            i += 1
        table = pa.concat_tables(batch)
        store.write_block("default", "traces", table, sort_keys=SORT_KEYS, time_column=TIME_COLUMN,
                          key_column="trace_id", level=2, sidecars=trace_index.build,
                          writer_options=PARQUET_WRITER_OPTIONS,
                          source={"kind": "bench", "offset_lo": written, "offset_hi": written + table.num_rows})
        written += table.num_rows
    return samples


def lookup_run(total_spans: int) -> dict:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as d:
        data = Path(d) / "data"
        t0 = time.monotonic()
        samples = build_lookup_dataset(data, total_spans, rng)
        build_s = time.monotonic() - t0
        proc, addr = start_server(data)
        try:
            times = []
            with httpx.Client(timeout=60) as client:
                for tid in samples[:5]:  # warm-up: sidecar and footer caches
                    client.get(f"http://{addr['http']}/api/traces/{tid.hex()}")
                for tid in samples[5:]:
                    t = time.perf_counter()
                    r = client.get(f"http://{addr['http']}/api/traces/{tid.hex()}")
                    times.append((time.perf_counter() - t) * 1000)
                    assert r.status_code == 200
            blocks = len(list((data / "blocks").rglob("meta.json")))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(300)
    times.sort()
    return {"stored_spans": total_spans, "blocks": blocks, "lookups": len(times), "build_s": build_s,
            "by_id_p50_ms": times[len(times) // 2], "by_id_p99_ms": times[int(len(times) * 0.99)]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--lookup-spans", type=int, default=10_000_000)
    ap.add_argument("--skip-ingest", action="store_true")
    ap.add_argument("--skip-lookup", action="store_true")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    if not args.skip_ingest:
        for transport in ("http", "grpc"):
            runs = [ingest_run(transport, args.seconds, args.connections) for _ in range(args.runs)]
            for r in runs:
                print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()}))
            keys = [k for k, v in runs[0].items() if isinstance(v, (int, float))]
            med = {k: round(statistics.median(r[k] for r in runs), 2) for k in keys}
            print(f"MEDIAN {transport} over {args.runs} runs: {json.dumps(med)}")
    if not args.skip_lookup:
        print(f"trace by id (no time range): {json.dumps(lookup_run(args.lookup_spans))}")


if __name__ == "__main__":
    main()
