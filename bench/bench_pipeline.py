"""The processing layer's benchmark: spans/s through the pipeline with tail sampling and
redaction on, memory per 10,000 pending traces, and decision latency. Prints figures; asserts
nothing.

1. End to end (real server, load generator in its own process, bench/pipeline_loadgen.py):
   the workload of bench/sampling_workload.py (4 spans per trace, 5 % health checks, 0.5 %
   errors, 2 % slow, PII in every 20th trace) sent over ``--connections`` connections to a
   server with (a) no pipeline and (b) the full pipeline: filter (health checks), resource and
   attributes enrichment, redaction (allow_all_keys, every detector), span metrics, service
   graph and tail sampling (errors, latency >= 1 s, 10 % probabilistic; decision_wait
   ``--decision-wait``). Reported: acknowledged spans/s, spans/s through the tail sampler
   (rate of ``lookout_processor_received_spans_total`` while loading), the server's peak RSS
   and peak pending traces; and the decision latency: probe traces with an error sent every
   0.5 s during the load, measured from acknowledgement until the Tempo API returns them,
   minus decision_wait (p50/p99).
2. In process (``TailSampler`` alone, fake clock): Arrow + Python bytes held per 10,000
   pending traces, and decisions/s when a whole 1 s batch comes due.

    .venv/bin/python bench/bench_pipeline.py            # 200,000 traces (800 k spans), 3 runs each
    .venv/bin/python bench/bench_pipeline.py --small    # 50,000 traces, 1 run each
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import pipeline_loadgen  # noqa: E402
from bench.sampling_workload import generate  # noqa: E402
from lookout.devserver import LookoutProcess, metric_sum  # noqa: E402

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def full_pipeline(decision_wait: str) -> dict:
    return {"traces": [
        {"filter/healthz": {"error_mode": "ignore", "traces": {"span": ['attributes["http.route"] == "/healthz"']}}},
        {"resource/env": {"attributes": [{"key": "deployment.environment", "value": "prod", "action": "upsert"}]}},
        {"attributes/team": {"actions": [{"key": "team", "value": "checkout", "action": "insert"}]}},
        {"redaction": {"allow_all_keys": True}},
        {"spanmetrics": {}},
        {"servicegraph": {}},
        {"tail_sampling": {"decision_wait": decision_wait, "num_traces": 500000, "policies": [
            {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
            {"name": "slow", "type": "latency", "latency": {"threshold_ms": 1000}},
            {"name": "some", "type": "probabilistic", "probabilistic": {"sampling_percentage": 10}}]}},
    ]}


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def med(values: list[float]) -> float:
    vals = [v for v in values if v == v]
    return statistics.median(vals) if vals else float("nan")


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * q))] if v else float("nan")


def probe_latency(node: LookoutProcess, stop: threading.Event, out: list[float]) -> None:
    """Error traces (always kept) sent one at a time: ack -> visible in the Tempo API."""
    i = 0
    with httpx.Client(timeout=60) as client:
        while not stop.is_set():
            body = generate(1, seed=10_000 + i, error_rate=1.0).requests
            tid = generate(1, seed=10_000 + i, error_rate=1.0).traces[0].trace_id
            ok = all(client.post(f"{node.otlp_http}/v1/traces", content=b, headers=PROTOBUF).status_code == 200
                     for b in body)
            if not ok:
                continue
            acked = time.monotonic()
            while client.get(f"{node.http}/api/traces/{tid.hex()}").status_code != 200:
                time.sleep(0.02)
                if time.monotonic() - acked > 120:
                    break
            out.append(time.monotonic() - acked)
            i += 1
            stop.wait(0.5)


def e2e_run(spool: Path, info: dict, work: Path, pipeline: dict | None, args, wait_s: float) -> dict:
    cfg = {"log_level": "warning", "selfmon": {"interval": 0}, "storage": {"flush_interval": "5s"}}
    if pipeline:
        cfg["pipeline"] = pipeline
    data = Path(tempfile.mkdtemp(dir=work))
    node = LookoutProcess(data / "node", cfg).start()
    samples: list[tuple[float, float, float]] = []
    stop = threading.Event()
    probes: list[float] = []

    def poll() -> None:
        while not stop.is_set():
            text = node.metrics()
            samples.append((time.monotonic(), metric_sum(text, "lookout_processor_received_spans_total"),
                            metric_sum(text, "lookout_tail_sampling_pending_traces")))
            stop.wait(0.5)

    poller = threading.Thread(target=poll)
    poller.start()
    prober = threading.Thread(target=probe_latency, args=(node, stop, probes)) if pipeline else None
    if prober:
        prober.start()
    cmd = [sys.executable, str(ROOT / "bench" / "pipeline_loadgen.py"), "--spool", str(spool),
           "--target", node.addr["otlp_http"], "--connections", str(args.connections)]
    res = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    # let every pending trace be decided
    deadline = time.monotonic() + wait_s + 60
    while time.monotonic() < deadline:
        text = node.metrics()
        if (metric_sum(text, "lookout_log_consumer_lag_bytes", signal="traces") == 0
                and metric_sum(text, "lookout_tail_sampling_pending_traces") == 0):
            break
        time.sleep(0.5)
    stop.set()
    poller.join()
    if prober:
        prober.join()
    rss = peak_rss(node.proc.pid)
    node.terminate()
    out = {"acked_spans_per_s": res["acked_spans"] / res["seconds"], "seconds": res["seconds"],
           "refused": res["refused"], "errors": res["errors"], "peak_rss_mb": rss / 2**20,
           "request_p50_ms": pct(res["latencies_ms"], 0.5), "request_p99_ms": pct(res["latencies_ms"], 0.99)}
    moving = [(t, v) for t, v, _ in samples]
    if pipeline and len(moving) > 2:
        first = next((i for i, (_, v) in enumerate(moving) if v > 0), None)
        last = max(range(len(moving)), key=lambda i: moving[i][1])
        if first is not None and last > first:
            out["sampler_spans_per_s"] = (moving[last][1] - moving[first][1]) / (moving[last][0] - moving[first][0])
        out["peak_pending_traces"] = max(p for _, _, p in samples)
        wait = float(args.decision_wait.rstrip("s"))
        out["decision_latency_p50_s"] = pct([p - wait for p in probes], 0.5)
        out["decision_latency_p99_s"] = pct([p - wait for p in probes], 0.99)
        out["probes"] = len(probes)
    return out


def sampler_micro(n_traces: int) -> dict:
    """TailSampler alone on a fake clock: memory per 10k pending traces, decisions/s."""
    import pyarrow as pa

    from lookout.otlp.traces import decode_traces
    from lookout.pipeline.stats import ProcessorStats
    from lookout.pipeline.tailsampling import TailSampler, parse_config

    problems: list[str] = []
    cfg = parse_config({"decision_wait": "10s", "num_traces": n_traces * 2, "policies": [
        {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
        {"name": "slow", "type": "latency", "latency": {"threshold_ms": 1000}},
        {"name": "some", "type": "probabilistic", "probabilistic": {"sampling_percentage": 10}}]}, "ts", problems)
    assert cfg is not None, problems
    wl = generate(n_traces, seed=3)
    tables = [decode_traces([b]) for b in wl.requests]
    now = [1000.0]
    sampler = TailSampler(cfg, ProcessorStats("traces", "tail_sampling"), clock=lambda: now[0], wall=lambda: now[0])
    held_arrow = sum(t.nbytes for t in tables)
    tracemalloc.start()
    py0 = tracemalloc.get_traced_memory()[0]
    arrow0 = pa.total_allocated_bytes()
    t0 = time.perf_counter()
    for i, t in enumerate(tables):
        sampler.add(t, i)
    add_s = time.perf_counter() - t0
    py = tracemalloc.get_traced_memory()[0] - py0
    arrow = pa.total_allocated_bytes() - arrow0
    tracemalloc.stop()
    pending = sampler.pending_traces
    decided, tick_times = 0, []
    t0 = time.perf_counter()
    for _ in range(15):
        now[0] += 1.0
        s = time.perf_counter()
        sampler.tick()
        tick_times.append(time.perf_counter() - s)
    decide_s = time.perf_counter() - t0
    decided = pending - sampler.pending_traces
    del tables
    return {"traces": n_traces, "pending": pending, "python_bytes_per_10k": py * 10_000 / max(pending, 1),
            "arrow_new_bytes_per_10k": arrow * 10_000 / max(pending, 1),
            "span_table_bytes_per_10k": held_arrow * 10_000 / max(pending, 1),
            "add_spans_per_s": wl.spans / add_s, "decisions_per_s": decided / decide_s if decide_s else 0,
            "longest_tick_s": max(tick_times)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--traces", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--decision-wait", default="5s")
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--work-dir", type=Path, default=None)
    args = ap.parse_args()
    if args.small:
        args.traces, args.runs = 50_000, 1
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    work.mkdir(parents=True, exist_ok=True)
    spool = work / f"spool-{args.traces}"
    info = (json.loads((spool / "info.json").read_text()) if (spool / "info.json").exists()
            else pipeline_loadgen.write_spool(spool, args.traces))
    print(f"machine: {os.cpu_count()} CPUs; workload: {json.dumps(info)}")
    wait_s = float(args.decision_wait.rstrip("s"))
    for label, pipeline in (("no pipeline", None), ("full pipeline", full_pipeline(args.decision_wait))):
        runs = [e2e_run(spool, info, work, pipeline, args, wait_s) for _ in range(args.runs)]
        for r in runs:
            print(f"  {label} run: {json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()})}")
        keys = sorted({k for r in runs for k in r if isinstance(r[k], (int, float))})
        print(f"{label} (median of {len(runs)}): "
              + ", ".join(f"{k}={med([r[k] for r in runs if k in r]):.3g}" for k in keys))
    for n in (10_000, 50_000):
        m = sampler_micro(n)
        print("tail sampler in process: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                      for k, v in m.items()))


if __name__ == "__main__":
    main()
