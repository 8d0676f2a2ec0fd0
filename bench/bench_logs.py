"""End-to-end logs benchmark against the real server. Prints figures; asserts nothing.

Data: bench/logs_loadgen.py — Kubernetes-style OTLP logs (6 nodes x 4 pods of 6 services, one
request per node per time slice, ``--per-request`` records, gzip level 1), ``--lines`` records
(default 10 M) with timestamps spread evenly over ``--hours`` (default 24) ending now, encoded
once into a spool (not timed) and sent from a separate process over ``--connections`` keep-alive
connections to ``POST /v1/logs`` (OTLP/HTTP, protobuf + gzip), oldest first.

Every server runs with ``logs.reject_old_samples_max_age: 0s`` (the data reaches 24 h back) and
otherwise the defaults.

1. Ingest (``--ingest-runs`` fresh servers, each sent the first ``--ingest-lines`` records):
   acknowledged records/s, end-to-end records/s (the clock stops when
   ``lookout_log_consumer_lag_bytes{signal="logs"}`` is 0, i.e. every acked record is in the
   queryable head), request p50/p99, the server's peak RSS (VmHWM). The big load of step 3 is
   reported as one more ingest figure.
2. Size: SIGTERM (drains and flushes), bytes per line of ``blocks/<tenant>/logs`` (all files, and
   Parquet only), then compaction (in process, the server's own ``LogStore.compact`` with
   ``storage.compaction_window`` = ``--compaction-window``, default 24 h, repeated until it has
   nothing to do) and bytes per line again; compared with
   ``zstd -19`` (the CLI, single-threaded) of the same requests' uncompressed protobuf,
   concatenated.
3. Scan: all ``--lines`` records ingested, flushed (SIGTERM), compacted; a server restarted over
   them; instant ``sum(count_over_time({k8s_cluster_name="eu-1"} |= "<needle>" [<whole range>]))``,
   summed with ``sum(...)`` (structured metadata such as trace_id would otherwise make one
   series per line) through ``/loki/api/v1/query``, for a rare needle (~1 in 100,000 lines) and a common one
   (~40 %): lines in the range / median seconds.
4. Latency: ``sum by (level) (count_over_time({service_name="checkout"} | logfmt [1m]))`` through
   ``/loki/api/v1/query_range`` with ``step=60s`` (the 1 m windows tile the range, so every line
   of the stream is counted) over the last 1 h and over the whole ``--hours``; p50/p99 of
   ``--query-reps`` repetitions after one warm-up. ``level`` comes from the logfmt body
   (``checkout`` logs logfmt), as a Loki user without ``detected_level`` would write it.

    .venv/bin/python bench/bench_logs.py            # 10 M lines, 3 x 1 M-line ingest runs
    .venv/bin/python bench/bench_logs.py --small    # 1 M lines, 2 x 200 k-line ingest runs
    options: --lines --ingest-lines --ingest-runs --hours --connections --per-request
             --query-reps --work-dir DIR (spools are kept and reused there)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import logs_loadgen  # noqa: E402
from lookout.config import Storage  # noqa: E402
from lookout.devserver import LookoutProcess, metric_sum  # noqa: E402
from lookout.logs.store import LogStore  # noqa: E402
from lookout.selfmon.registry import Registry  # noqa: E402
from lookout.storage.blocks import BlockStore  # noqa: E402

NS = 1_000_000_000
SERVER_CONFIG = {"log_level": "warning", "logs": {"reject_old_samples_max_age": "0s"}}
TARGETS = {"e2e_records_per_s": 150_000, "scan_lines_per_s": 5_000_000}


# -- helpers -----------------------------------------------------------------------------------------

def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * q))]


def med(values: list[float]) -> float:
    vals = [v for v in values if isinstance(v, (int, float)) and v == v]
    return statistics.median(vals) if vals else float("nan")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def logs_dir_bytes(data: Path) -> tuple[int, int]:
    """(all files, Parquet files) under blocks/*/logs."""
    total = parquet = 0
    for p in data.glob("blocks/*/logs/**/*"):
        if p.is_file():
            n = p.stat().st_size
            total += n
            parquet += n if p.suffix == ".parquet" else 0
    return total, parquet


def lag(server: LookoutProcess) -> float:
    return metric_sum(server.metrics(), "lookout_log_consumer_lag_bytes", signal="logs")


def start(data: Path) -> LookoutProcess:
    data.mkdir(parents=True, exist_ok=True)
    return LookoutProcess(data, SERVER_CONFIG).start(timeout=600)


def stop(server: LookoutProcess) -> float:
    """SIGTERM (drain + flush); returns the seconds it took."""
    t = time.monotonic()
    try:
        server.terminate(timeout=1800)
    finally:
        server.stop()
    return time.monotonic() - t


def compact(data: Path, window_s: float) -> float:
    store = LogStore(BlockStore(data), Storage(compaction_window=window_s), Registry())
    store.blocks.load()
    t = time.monotonic()
    while store.compact():
        pass
    return time.monotonic() - t


def stored_rows(data: Path) -> int:
    bs = BlockStore(data)
    bs.load()
    return sum(m.rows for m in bs.list_blocks(None, "logs"))


def size_figures(data: Path, lines: int, prefix: str) -> dict:
    total, parquet = logs_dir_bytes(data)
    return {f"{prefix}_bytes_per_line": total / max(1, lines),
            f"{prefix}_parquet_bytes_per_line": parquet / max(1, lines)}


# -- 1 + 2: ingest ------------------------------------------------------------------------------------

def ingest(spool: Path, data: Path, connections: int, max_requests: int | None) -> tuple[dict, LookoutProcess]:
    """Send (part of) the spool to a fresh server; returns figures and the (running) server."""
    server = start(data)
    try:
        t0 = time.monotonic()
        cmd = [sys.executable, str(ROOT / "bench" / "logs_loadgen.py"), "--spool", str(spool),
               "--target", server.addr["otlp_http"], "--connections", str(connections)]
        if max_requests:
            cmd += ["--max-requests", str(max_requests)]
        gen = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
        load = json.loads(gen.stdout.strip().splitlines()[-1])
        load_end = time.monotonic()
        while lag(server) > 0:
            time.sleep(0.05)
        e2e_end = time.monotonic()
        # the loadgen spends its first moments starting up and mapping the spool; use its own clock
        e2e_s = e2e_end - t0 - ((load_end - t0) - load["seconds"])
        appended = metric_sum(server.metrics(), "lookout_logs_entries_appended_total")
        out = {"records": load["acked_records"], "requests": load["requests"],
               "acked_records_per_s": load["acked_records"] / load["seconds"],
               "e2e_records_per_s": load["acked_records"] / max(e2e_s, 1e-9),
               "request_p50_ms": pct(load["latencies_ms"], 0.5), "request_p99_ms": pct(load["latencies_ms"], 0.99),
               "refused_requests": load["refused"], "errors": load["errors"], "first_error": load["first_error"],
               "appended_entries": appended, "lag_wait_s": e2e_end - load_end,
               "peak_rss_mb": peak_rss_mb(server.proc.pid)}
    except BaseException:
        stop(server)
        raise
    return out, server


def ingest_run(spool: Path, work: Path, args, with_compaction: bool) -> dict:
    with tempfile.TemporaryDirectory(dir=work) as d:
        data = Path(d) / "data"
        out, server = ingest(spool, data, args.connections, args.ingest_requests)
        out["shutdown_flush_s"] = stop(server)
        out["stored_rows"] = stored_rows(data)
        out.update(size_figures(data, out["records"], "flushed"))
        out["blocks_after_flush"] = len(list(data.glob("blocks/*/logs/**/meta.json")))
        if with_compaction:
            out["compaction_s"] = compact(data, args.compaction_window)
            out.update(size_figures(data, out["records"], "compacted"))
        return out


def zstd19_bytes(raw: Path) -> tuple[int, str]:
    try:
        p = subprocess.run(["zstd", "-19", "-q", "-c", str(raw)], capture_output=True, check=True)
        return len(p.stdout), "zstd CLI -19"
    except FileNotFoundError:
        import cramjam

        return len(cramjam.zstd.compress(raw.read_bytes(), level=19)), "cramjam zstd level 19"


# -- 3 + 4: queries -----------------------------------------------------------------------------------

def timed_query(client: httpx.Client, url: str, params: dict, reps: int) -> tuple[list[float], dict]:
    lat, body = [], {}
    for i in range(reps + 1):  # the first is a warm-up
        t = time.perf_counter()
        try:
            r = client.get(url, params=params)
        except httpx.HTTPError as e:
            return lat, {"error": f"{type(e).__name__}: {e} after {time.perf_counter() - t:.1f} s"}
        ms = (time.perf_counter() - t) * 1000
        if r.status_code != 200:
            return [], {"error": f"{r.status_code} {r.text[:300]}"}
        body = r.json()
        if i:
            lat.append(ms)
    return lat, body


def result_total(body: dict) -> float:
    res = body.get("data", {}).get("result", [])
    total = 0.0
    for s in res:
        if "value" in s:
            total += float(s["value"][1])
        for _, v in s.get("values", []):
            total += float(v)
    return total


def query_runs(server: LookoutProcess, info: dict, lines: int, args) -> dict:
    end_ns = info["end_ns"]
    whole_s = (end_ns - info["start_ns"]) // NS + 60
    out: dict = {}
    with httpx.Client(timeout=1800) as client:
        for name, needle in (("rare", logs_loadgen.RARE_NEEDLE), ("common", logs_loadgen.COMMON_NEEDLE)):
            q = f'sum(count_over_time({{k8s_cluster_name="eu-1"}} |= "{needle}" [{whole_s}s]))'
            lat, body = timed_query(client, f"{server.http}/loki/api/v1/query", {"query": q, "time": str(end_ns)},
                                    args.scan_reps)
            secs = med(lat) / 1000
            print(f"scan {name}: p50 {med(lat):.0f} ms, {body.get('error') or result_total(body)}", flush=True)
            out[f"scan_{name}"] = {"query": q, "p50_ms": med(lat), "min_ms": min(lat) if lat else float("nan"),
                                   "lines_per_s": lines / secs if secs == secs and secs else float("nan"),
                                   "matches": result_total(body), "error": body.get("error")}
        q = f'sum by (level) (count_over_time({{service_name="{logs_loadgen.LOGFMT_SERVICE}"}} | logfmt [1m]))'
        for name, hours in (("1h", 1.0), (f"{args.hours:g}h", args.hours)):
            params = {"query": q, "start": str(end_ns - int(hours * 3600) * NS), "end": str(end_ns), "step": "60s",
                      "limit": "1000"}
            lat, body = timed_query(client, f"{server.http}/loki/api/v1/query_range", params, args.query_reps)
            print(f"level {name}: p50 {pct(lat, 0.5):.0f} ms, {body.get('error') or result_total(body)}", flush=True)
            out[f"level_{name}"] = {"query": q, "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99),
                                    "series": len(body.get("data", {}).get("result", [])),
                                    "counted_lines": result_total(body), "error": body.get("error")}
    return out


def big_run(spool: Path, info: dict, work: Path, args) -> dict:
    with tempfile.TemporaryDirectory(dir=work) as d:
        data = Path(d) / "data"
        out, server = ingest(spool, data, args.connections, None)
        out["shutdown_flush_s"] = stop(server)
        out["stored_rows"] = stored_rows(data)
        out.update(size_figures(data, out["records"], "flushed"))
        out["blocks_after_flush"] = len(list(data.glob("blocks/*/logs/**/meta.json")))
        out["compaction_s"] = compact(data, args.compaction_window)
        out.update(size_figures(data, out["records"], "compacted"))
        out["blocks_after_compaction"] = len(list(data.glob("blocks/*/logs/**/meta.json")))
        server = start(data)
        try:
            out["queries"] = query_runs(server, info, out["stored_rows"], args)
            if server.proc.poll() is None:
                out["query_server_peak_rss_mb"] = peak_rss_mb(server.proc.pid)
            else:
                out["query_server_exit"] = server.proc.returncode
                print(f"query server died ({server.proc.returncode}); log tail:\n{server.log()[-3000:]}")
        finally:
            if server.proc.poll() is None:
                stop(server)
            else:
                server.stop()
        return out


# -- report ---------------------------------------------------------------------------------------------

def fmt(x) -> str:
    if not isinstance(x, (int, float)) or x != x:
        return "n/a"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.3g}" if abs(x) < 10 else f"{x:.1f}"


def report(runs: list[dict], big: dict | None, z19: float, z19_how: str, args) -> dict:
    def m(key: str) -> float:
        return med([r.get(key) for r in runs])

    fig = {"ingest_lines_per_run": args.ingest_lines, "ingest_runs": len(runs), "lines": args.lines,
           "hours": args.hours, "connections": args.connections, "per_request": args.per_request,
           "acked_records_per_s": m("acked_records_per_s"), "e2e_records_per_s": m("e2e_records_per_s"),
           "request_p50_ms": m("request_p50_ms"), "request_p99_ms": m("request_p99_ms"),
           "peak_rss_mb": m("peak_rss_mb"), "flushed_bytes_per_line": m("flushed_bytes_per_line"),
           "flushed_parquet_bytes_per_line": m("flushed_parquet_bytes_per_line"),
           "compacted_bytes_per_line": med([r.get("compacted_bytes_per_line") for r in runs]),
           "zstd19_bytes_per_line": z19, "zstd19_how": z19_how}
    rows = [("figure", "measured", "target", "met")]

    def row(label: str, v, target=None, ok=None) -> None:
        rows.append((label, fmt(v) if not isinstance(v, str) else v, "" if target is None else target,
                     "" if ok is None else ("yes" if ok else "NO")))

    e2e = fig["e2e_records_per_s"]
    row(f"ingest acked records/s (median of {len(runs)} x {args.ingest_lines:,})", fig["acked_records_per_s"])
    row("ingest e2e records/s (acked + in head)", e2e, ">= 150,000",
        e2e >= TARGETS["e2e_records_per_s"] if runs else None)
    row("request p50 ms", fig["request_p50_ms"])
    row("request p99 ms", fig["request_p99_ms"])
    row("server peak RSS MB (VmHWM)", fig["peak_rss_mb"])
    row("bytes/line after flush (all block files)", fig["flushed_bytes_per_line"], f"<= zstd -19 ({fmt(z19)})",
        fig["flushed_bytes_per_line"] <= z19 if runs else None)
    row("bytes/line after flush (Parquet only)", fig["flushed_parquet_bytes_per_line"])
    row("bytes/line after compaction (all files)", fig["compacted_bytes_per_line"], f"<= zstd -19 ({fmt(z19)})",
        fig["compacted_bytes_per_line"] <= z19 if runs else None)
    row(f"bytes/line zstd -19 of raw OTLP ({z19_how})", z19)
    if big:
        lines = big["stored_rows"]
        fig.update({"big_" + k: big.get(k) for k in ("records", "stored_rows", "acked_records_per_s",
                                                       "e2e_records_per_s", "request_p50_ms", "request_p99_ms",
                                                       "peak_rss_mb", "shutdown_flush_s", "flushed_bytes_per_line",
                                                       "compacted_bytes_per_line", "compaction_s", "blocks_after_flush",
                                                       "blocks_after_compaction", "query_server_peak_rss_mb")})
        row(f"big load ({big['records']:,} lines) acked records/s", big["acked_records_per_s"])
        row("big load e2e records/s", big["e2e_records_per_s"], ">= 150,000",
            big["e2e_records_per_s"] >= TARGETS["e2e_records_per_s"])
        row("big load peak RSS MB", big["peak_rss_mb"])
        row("big load bytes/line flushed / compacted",
            f"{fmt(big['flushed_bytes_per_line'])} / {fmt(big['compacted_bytes_per_line'])}")
        q = big["queries"]
        for name in ("rare", "common"):
            s = q[f"scan_{name}"]
            fig[f"scan_{name}_lines_per_s"] = s["lines_per_s"]
            fig[f"scan_{name}_p50_ms"] = s["p50_ms"]
            fig[f"scan_{name}_matches"] = s["matches"]
            row(f"|= scan {name} needle lines/s ({lines:,} lines, {fmt(s['matches'])} hits)",
                s["lines_per_s"] if not s["error"] else s["error"][:40], ">= 5,000,000",
                s["lines_per_s"] >= TARGETS["scan_lines_per_s"] if not s["error"] else False)
        for name in ("1h", f"{args.hours:g}h"):
            s = q[f"level_{name}"]
            fig[f"level_{name}_p50_ms"], fig[f"level_{name}_p99_ms"] = s["p50_ms"], s["p99_ms"]
            fig[f"level_{name}_counted_lines"] = s["counted_lines"]
            label = f"sum by (level) logfmt [1m] over {name} ({fmt(s['counted_lines'])} lines)"
            if s["error"]:
                row(label, s["error"][:40])
            else:
                row(label + " p50 ms", s["p50_ms"])
                row(label + " p99 ms", s["p99_ms"])
    w = [max(len(str(r[i])) for r in rows) for i in range(4)]
    print("\n".join("  ".join(str(c).ljust(w[i]) if i == 0 else str(c).rjust(w[i]) for i, c in enumerate(r))
                    for r in rows))
    return fig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=10_000_000, help="records of the scan/query dataset")
    ap.add_argument("--ingest-lines", type=int, default=1_000_000, help="records per ingest run")
    ap.add_argument("--ingest-runs", type=int, default=None, help="default 3 (2 with --small)")
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--per-request", type=int, default=1000)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--compaction-window", type=float, default=86400.0,
                    help="storage.compaction_window for the compaction step, seconds (server default 3600; the "
                         "time-ordered 24 h backfill puts every flushed block in a different hour, so 1 h merges none)")
    ap.add_argument("--query-reps", type=int, default=10)
    ap.add_argument("--scan-reps", type=int, default=5)
    ap.add_argument("--small", action="store_true", help="1 M lines; 2 ingest runs of 200 k")
    ap.add_argument("--skip-big", action="store_true", help="ingest runs and sizes only")
    ap.add_argument("--work-dir", type=Path, default=None, help="keep spools (and reuse them) here")
    args = ap.parse_args()
    if args.small:
        args.lines, args.ingest_lines = 1_000_000, 200_000
    if args.ingest_runs is None:
        args.ingest_runs = 2 if args.small else 3
    args.ingest_lines = min(args.ingest_lines, args.lines)
    args.ingest_requests = -(-args.ingest_lines // args.per_request)
    args.ingest_lines = min(args.lines, args.ingest_requests * args.per_request)
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}, load average {' '.join(load)}; "
          f"data: {args.lines:,} lines over {args.hours:g} h, ingest runs {args.ingest_runs} x {args.ingest_lines:,}, "
          f"{args.per_request} records/request, {args.connections} connections")
    tmp = None
    if args.work_dir is None:
        tmp = tempfile.TemporaryDirectory()
        work = Path(tmp.name)
    else:
        work = args.work_dir
        work.mkdir(parents=True, exist_ok=True)
    try:
        spool = work / f"spool-logs-{args.lines}-{args.hours:g}h-{args.per_request}-{args.ingest_lines}"
        if (spool / "info.json").exists():
            info = json.loads((spool / "info.json").read_text())
            print(f"spool reused: {json.dumps(info)}")
        else:
            end_ns = (time.time_ns() // (60 * NS) - 1) * 60 * NS
            t = time.monotonic()
            info = logs_loadgen.write_spool(spool, args.lines, end_ns - int(args.hours * 3600) * NS, end_ns,
                                            per_request=args.per_request, raw_lines=args.ingest_lines)
            print(f"spool built in {time.monotonic() - t:.0f} s: {json.dumps(info)}")
        print(f"raw OTLP {info['raw_bytes'] / info['records']:.0f} B/line, gzip-1 "
              f"{info['gzip_bytes'] / info['records']:.0f} B/line")
        runs = []
        for i in range(args.ingest_runs):
            r = ingest_run(spool, work, args, with_compaction=True)
            runs.append(r)
            print(f"ingest run {i + 1}: {json.dumps(r, default=str)}", flush=True)
        z19_line, z19_how = float("nan"), "skipped (no ingest runs)"
        if runs:
            t = time.monotonic()
            z19, z19_how = zstd19_bytes(spool / "raw.bin")
            z19_line = z19 / max(1, info["raw_lines"])
            print(f"{z19_how} of {info['raw_lines']:,} lines of raw OTLP: {z19:,} bytes, {z19_line:.1f} B/line "
                  f"({time.monotonic() - t:.0f} s)")
        big = None
        if not args.skip_big:
            big = big_run(spool, info, work, args)
            print(f"big run: {json.dumps(big, default=str)}", flush=True)
        print()
        fig = report(runs, big, z19_line, z19_how, args)
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in fig.items()}))
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
