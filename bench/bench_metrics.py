"""Metrics benchmark: Lookout side by side with a real Prometheus, same machine, same data.
Prints figures; asserts nothing.

Data: bench/promgen.py — ``--series`` (default 10,000) realistic series x ``--hours`` (default 24)
at 15 s, encoded once into spools (not timed) and sent by bench/metrics_loadgen.py in a separate
process over ``--connections`` connections, time slice after time slice.

Per run (a fresh server each run; ``--runs``, medians printed):

* ingest by remote write (``POST /api/v1/write``): acknowledged samples/s. For Prometheus an ack
  means queryable; for Lookout the "e2e" figure also waits until its log consumer lag is 0.
* ingest by OTLP/HTTP (``POST /v1/metrics``, gzip) — Lookout only; samples counted as the
  Prometheus samples they become (a histogram point = buckets + _sum + _count).
* query latency p50/p99 over ``--query-reps`` repetitions of dashboard queries (rate, sum by,
  histogram_quantile, topk; range queries over the whole dataset at ~300 steps, plus instants).
* bytes per sample on disk. Prometheus: a TSDB snapshot with the head (``POST
  /api/v1/admin/tsdb/snapshot``) = every sample as compacted blocks, no WAL; the live WAL+blocks
  size is printed too. Lookout: its ``blocks/`` after SIGTERM (drain + flush).
* peak RSS of the server process.

Usage: python bench/bench_metrics.py [--small] [--series 10000 --hours 24] [--runs 3]
       [--skip-lookout | --skip-prometheus] [--connections 2] [--query-reps 10]
``--small`` = 1,000 series x 3 h, 2 runs (a quick trial; the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from prometheus_ref import PrometheusRef, dir_bytes  # noqa: E402

from bench import metrics_loadgen, promgen  # noqa: E402

SLICE_MS = 600_000
MAX_SAMPLES = 10_000


def dashboard_queries(start_s: int, end_s: int) -> list[tuple[str, str, dict]]:
    step = max(15, (end_s - start_s) // 300)
    rng = {"start": start_s, "end": end_s, "step": step}
    inst = {"time": end_s}
    return [
        ("rate 1 series", 'rate(http_requests_total{instance="host-00001:9100", handler="/api/users", '
                          'method="GET", status="200"}[5m])', rng),
        ("sum by rate", "sum by (job, status) (rate(http_requests_total[5m]))", rng),
        ("hist_quantile", "histogram_quantile(0.99, sum by (le, handler) "
                          "(rate(http_request_duration_seconds_bucket[5m])))", rng),
        ("topk rate", "topk(10, rate(process_cpu_seconds_total[5m]))", rng),
        ("instant sum increase", "sum by (job) (increase(http_requests_total[1h]))", inst),
        ("instant topk", "topk(5, memory_usage_bytes)", inst),
    ]


# -- spools ------------------------------------------------------------------------------------------

def build_spools(work: Path, n_series: int, start_ms: int, end_ms: int, interval_ms: int) -> dict:
    def batches(kind: str):
        make = metrics_loadgen.rw_requests if kind == "rw" else metrics_loadgen.otlp_requests
        for series in promgen.iter_generate(n_series, start_ms, end_ms, interval_ms, seed=7, targets_per_batch=10):
            yield list(make(series, start_ms, end_ms, SLICE_MS, MAX_SAMPLES))

    info = {}
    for kind in ("rw", "otlp"):
        t = time.monotonic()
        info[kind] = metrics_loadgen.write_spool(work / f"spool-{kind}", batches(kind))
        info[kind]["encode_s"] = time.monotonic() - t
    return info


def load(spool: Path, kind: str, target: str, connections: int) -> dict:
    gen = subprocess.run([sys.executable, str(ROOT / "bench" / "metrics_loadgen.py"), "--spool", str(spool),
                          "--kind", kind, "--target", target, "--connections", str(connections)],
                         capture_output=True, text=True, cwd=ROOT)
    if gen.returncode != 0:
        raise SystemExit(f"loadgen failed:\n{gen.stderr}")
    return json.loads(gen.stdout.strip().splitlines()[-1])


# -- measuring ---------------------------------------------------------------------------------------

def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * q))]


def time_queries(base: str, queries, reps: int) -> dict:
    out = {}
    with httpx.Client(timeout=600) as client:
        for name, expr, params in queries:
            path = "/api/v1/query_range" if "step" in params else "/api/v1/query"
            lat, err, nseries = [], None, 0
            for i in range(reps + 1):  # the first is a warm-up
                t = time.perf_counter()
                r = client.get(base + path, params={"query": expr, **params})
                ms = (time.perf_counter() - t) * 1000
                body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
                if r.status_code != 200 or body.get("status") != "success":
                    err = f"{r.status_code} {str(body.get('error') or r.text)[:120]}"
                    break
                nseries = len(body["data"]["result"])
                if i:
                    lat.append(ms)
            out[name] = {"p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99), "series": nseries, "error": err}
    return out


def prometheus_run(work: Path, spools: dict, args) -> dict:
    with tempfile.TemporaryDirectory(dir=work) as d:
        prom = PrometheusRef(Path(d), retention="3650d").start()
        try:
            res = load(spools["rw"], "rw", prom.addr, args.connections)
            appended = prom.metric("prometheus_tsdb_head_samples_appended_total")
            time.sleep(2)
            q = time_queries(prom.url, args.queries, args.query_reps)
            live = dir_bytes(prom.data_dir)
            t = time.monotonic()
            snap = prom.snapshot()
            snap_s = time.monotonic() - t
            snap_bytes = dir_bytes(snap)
            rss = peak_rss_mb(prom.proc.pid)
        finally:
            prom.stop()
    return {"rw_samples_per_s": res["acked_samples"] / res["seconds"], "rw_e2e_samples_per_s":
            res["acked_samples"] / res["seconds"], "rw_errors": res["errors"], "rw_first_error": res["first_error"],
            "rw_p50_request_ms": pct(res["latencies_ms"], 0.5), "rw_p99_request_ms": pct(res["latencies_ms"], 0.99),
            "acked_samples": res["acked_samples"], "stored_samples": appended,
            "bytes_per_sample": snap_bytes / max(1, res["acked_samples"]),
            "live_wal_blocks_bytes_per_sample": live / max(1, res["acked_samples"]), "snapshot_s": snap_s,
            "peak_rss_mb": rss, "queries": q}


def start_lookout(data_dir: Path) -> tuple[subprocess.Popen, dict, Path]:
    cfg = {"data_dir": str(data_dir), "log_level": "warning",
           "listen": {k: "127.0.0.1:0" for k in ("otlp_grpc", "otlp_http", "http", "health")}}
    cfg_path = data_dir.parent / f"{data_dir.name}.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    log = data_dir.parent / f"{data_dir.name}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "lookout.cli", "serve", "--config", str(cfg_path)], cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)
    ready = data_dir / "listening.json"
    deadline = time.monotonic() + 300
    while not (ready.exists() and json.loads(ready.read_text())["ready"]):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"lookout did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    return proc, json.loads(ready.read_text()), log


def lookout_metric(addr: dict, name: str) -> float:
    text = httpx.get(f"http://{addr['http']}/metrics", timeout=30).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


def lookout_run(work: Path, spools: dict, kind: str, args) -> dict:
    with tempfile.TemporaryDirectory(dir=work) as d:
        data = Path(d) / "data"
        proc, addr, log = start_lookout(data)
        try:
            target = addr["http"] if kind == "rw" else addr["otlp_http"]
            t0 = time.monotonic()
            res = load(spools[kind], kind, target, args.connections)
            load_end = time.monotonic()
            while lookout_metric(addr, "lookout_log_consumer_lag_bytes") > 0:
                time.sleep(0.05)
            e2e_s = time.monotonic() - t0 - ((load_end - t0) - res["seconds"])
            out = {f"{kind}_samples_per_s": res["acked_samples"] / res["seconds"],
                   f"{kind}_e2e_samples_per_s": res["acked_samples"] / max(e2e_s, 1e-9),
                   f"{kind}_errors": res["errors"], f"{kind}_first_error": res["first_error"],
                   f"{kind}_p50_request_ms": pct(res["latencies_ms"], 0.5),
                   f"{kind}_p99_request_ms": pct(res["latencies_ms"], 0.99), "acked_samples": res["acked_samples"]}
            if kind == "rw":
                out["queries"] = time_queries(f"http://{addr['http']}", args.queries, args.query_reps)
            out["peak_rss_mb"] = peak_rss_mb(proc.pid)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(600)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        blocks = data / "blocks"
        metric_dirs = list(blocks.glob("*/metrics"))
        stored = sum(dir_bytes(p) for p in metric_dirs) if metric_dirs else dir_bytes(blocks) if blocks.exists() else 0
        out["bytes_per_sample"] = stored / max(1, out["acked_samples"]) if stored else float("nan")
        if out.get(f"{kind}_errors"):
            out["log_tail"] = log.read_text(errors="replace")[-1500:]
    return out


# -- report --------------------------------------------------------------------------------------------

def median_of(runs: list[dict], key: str) -> float:
    vals = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
    return statistics.median(vals) if vals else float("nan")


def median_query(runs: list[dict], name: str, key: str) -> float:
    vals = [r["queries"][name][key] for r in runs if "queries" in r and r["queries"][name]["error"] is None]
    return statistics.median(vals) if vals else float("nan")


def fmt(x: float) -> str:
    if x != x:
        return "n/a"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}" if abs(x) < 10 else f"{x:.1f}"


def table(lookout: dict[str, list[dict]], prom: list[dict], queries) -> str:
    rows = [("metric", "Lookout", "Prometheus", "Lookout/Prom")]

    def row(label: str, lv: float, pv: float) -> None:
        ratio = lv / pv if pv == pv and lv == lv and pv else float("nan")
        rows.append((label, fmt(lv), fmt(pv), fmt(ratio)))

    rw, otlp = lookout.get("rw", []), lookout.get("otlp", [])
    row("remote write ack samples/s", median_of(rw, "rw_samples_per_s"), median_of(prom, "rw_samples_per_s"))
    row("remote write e2e samples/s", median_of(rw, "rw_e2e_samples_per_s"), median_of(prom, "rw_e2e_samples_per_s"))
    row("remote write p99 request ms", median_of(rw, "rw_p99_request_ms"), median_of(prom, "rw_p99_request_ms"))
    row("OTLP ack samples/s", median_of(otlp, "otlp_samples_per_s"), float("nan"))
    row("OTLP e2e samples/s", median_of(otlp, "otlp_e2e_samples_per_s"), float("nan"))
    row("bytes/sample on disk (blocks)", median_of(rw, "bytes_per_sample"), median_of(prom, "bytes_per_sample"))
    row("  Prometheus live WAL+blocks", float("nan"), median_of(prom, "live_wal_blocks_bytes_per_sample"))
    row("peak RSS MB (rw run)", median_of(rw, "peak_rss_mb"), median_of(prom, "peak_rss_mb"))
    for name, _, _ in queries:
        for key in ("p50_ms", "p99_ms"):
            row(f"query {name} {key}", median_query(rw, name, key), median_query(prom, name, key))
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r)) for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--hours", type=float, default=24)
    ap.add_argument("--interval", type=float, default=15, help="scrape interval, seconds")
    ap.add_argument("--small", action="store_true", help="1,000 series x 3 h, 2 runs")
    ap.add_argument("--runs", type=int, default=None, help="default 3 (2 with --small)")
    ap.add_argument("--connections", type=int, default=2)
    ap.add_argument("--query-reps", type=int, default=10)
    ap.add_argument("--skip-lookout", action="store_true")
    ap.add_argument("--skip-prometheus", action="store_true")
    ap.add_argument("--work-dir", type=Path, default=None, help="where spools and data dirs go (default: a temp dir)")
    args = ap.parse_args()
    if args.small:
        args.series, args.hours = 1_000, 3.0
    if args.runs is None:
        args.runs = 2 if args.small else 3
    interval_ms = int(args.interval * 1000)
    end_s = int(time.time()) // 60 * 60 - 60
    start_s = end_s - int(args.hours * 3600)
    args.queries = dashboard_queries(start_s, end_s)
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}; data: {args.series} series x "
          f"{args.hours} h at {args.interval} s, {args.runs} runs, {args.connections} connections")
    with tempfile.TemporaryDirectory(dir=args.work_dir) as d:
        work = Path(d)
        spools_info = build_spools(work, args.series, start_s * 1000, end_s * 1000, interval_ms)
        print(f"spools: {json.dumps(spools_info)}")
        spools = {k: work / f"spool-{k}" for k in ("rw", "otlp")}
        prom_runs: list[dict] = []
        lookout_runs: dict[str, list[dict]] = {"rw": [], "otlp": []}
        for i in range(args.runs):
            if not args.skip_prometheus:
                r = prometheus_run(work, spools, args)
                prom_runs.append(r)
                print(f"prometheus run {i + 1}: {json.dumps(r, default=str)}")
            if not args.skip_lookout:
                for kind in ("rw", "otlp"):
                    try:
                        r = lookout_run(work, spools, kind, args)
                    except (httpx.HTTPError, SystemExit, KeyError, OSError) as e:
                        r = {"error": repr(e)}
                    lookout_runs[kind].append(r)
                    print(f"lookout {kind} run {i + 1}: {json.dumps(r, default=str)}")
        print()
        print(f"MEDIANS over {args.runs} runs ({spools_info['rw']['samples']:,} samples; queries over "
              f"{args.hours} h, {args.query_reps} reps each)")
        print(table(lookout_runs, prom_runs, args.queries))


if __name__ == "__main__":
    main()
