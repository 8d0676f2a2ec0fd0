"""UI benchmark: how fast the big views render in headless Chromium. Prints figures; asserts nothing.

A real server (subprocess) is loaded with (not timed):
  - 10,000 log lines in one stream (Loki push, logfmt lines with level and trace_id),
  - one trace of 10,000 spans over 10 services (OTLP protobuf, a tree 5 levels deep),
  - 50 counter series over the last hour at 15 s (remote write).
Debian's Chromium (driven by Playwright, its own process) then opens, ``--runs`` times each in a
fresh page:
  - /ui/logs with the 10,000 lines (limit 10000),
  - /ui/traces/<id> of the 10,000-span trace,
  - /ui/metrics with ``rate(...)`` of the 50 series over 1 h (50 x 240 points).
Per view: load = navigation start until the first row (or chart) is in the DOM, which includes the
API request, JSON parsing and the first render; api = the API request's own duration (resource
timing); scroll = the list scrolled top to bottom in 120 animation frames: frame interval p50 and
p95 (16.7 ms is 60 fps); rows = elements of the list in the DOM at the end (virtualization);
heap = JS heap used after scrolling. Medians over the runs.

    .venv/bin/python bench/bench_ui.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lookout.devserver import LookoutProcess  # noqa: E402
from lookout.metrics.remote_write import encode_write_request  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LINES = 10_000
SPANS = 10_000
SERIES = 50

# Scroll the virtual list from top to bottom over 120 frames; frame intervals in ms.
SCROLL_JS = """async (sel) => {
  const el = document.querySelector(sel);
  const frames = [];
  let last = performance.now();
  const steps = 120;
  for (let i = 1; i <= steps; i++) {
    el.scrollTop = (el.scrollHeight - el.clientHeight) * i / steps;
    await new Promise((r) => requestAnimationFrame(r));
    const now = performance.now();
    frames.push(now - last);
    last = now;
  }
  return frames;
}"""


def load_logs(base: str) -> None:
    t0 = time.time_ns() - LINES * 1_000_000
    levels = ["info", "info", "info", "warn", "error", "debug"]
    values = [[str(t0 + i * 1_000_000),
               f'level={levels[i % 6]} msg="request handled" path=/api/orders/{i} status={200 if i % 6 != 4 else 500} '
               f"duration_ms={i % 250} trace_id={i:032x}"] for i in range(LINES)]
    r = httpx.post(f"{base}/loki/api/v1/push", json={"streams": [{"stream": {"app": "bench"}, "values": values}]},
                   timeout=60)
    assert r.status_code == 204, r.text


def load_trace(otlp_http: str) -> str:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span

    trace_id = os.urandom(16)
    now = time.time_ns()
    start = now - 10 * 10**9
    req = ExportTraceServiceRequest()
    by_service: dict[int, ResourceSpans] = {}
    # a tree: span i's parent is (i - 1) // fanout, so ~5 levels for 10,000 spans with fanout 8
    fanout = 8
    for i in range(SPANS):
        svc = i % 10
        rs = by_service.get(svc)
        if rs is None:
            rs = req.resource_spans.add()
            rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=f"svc-{svc}")))
            rs.scope_spans.add()
            by_service[svc] = rs
        depth, j = 0, i
        while j > 0:
            j = (j - 1) // fanout
            depth += 1
        s = rs.scope_spans[0].spans.add()
        s.trace_id = trace_id
        s.span_id = (i + 1).to_bytes(8, "big")
        if i:
            s.parent_span_id = ((i - 1) // fanout + 1).to_bytes(8, "big")
        s.name = f"op-{i % 37}"
        s.kind = Span.SPAN_KIND_SERVER if i % 2 else Span.SPAN_KIND_CLIENT
        s.start_time_unix_nano = start + depth * 1_000_000 + (i % fanout) * 100_000
        s.end_time_unix_nano = start + 9 * 10**9 - depth * 1_000_000
        s.attributes.append(KeyValue(key="http.route", value=AnyValue(string_value=f"/api/{i % 37}")))
        if i % 500 == 7:
            s.status.code = 2
    r = httpx.post(f"{otlp_http}/v1/traces", content=req.SerializeToString(),
                   headers={"Content-Type": "application/x-protobuf"}, timeout=60)
    assert r.status_code == 200, r.text
    return trace_id.hex()


def load_metrics(base: str) -> None:
    now_ms = int(time.time() * 1000)
    t = np.arange(now_ms - 3_600_000, now_ms, 15_000, dtype=np.int64)
    series = [({"__name__": "bench_requests_total", "instance": f"i-{k}", "job": "bench"}, t,
               np.cumsum(np.full(len(t), 10.0 + k))) for k in range(SERIES)]
    r = httpx.post(f"{base}/api/v1/write", content=encode_write_request(series),
                   headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
                            "X-Prometheus-Remote-Write-Version": "0.1.0"}, timeout=60)
    assert r.status_code == 204, r.text


def wait_queryable(base: str, trace_id: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ok_trace = httpx.get(f"{base}/api/traces/{trace_id}", timeout=30).status_code == 200
        r = httpx.get(f"{base}/loki/api/v1/query", params={"query": 'count_over_time({app="bench"}[1h])'})
        ok_logs = r.status_code == 200 and r.json()["data"]["result"] and \
            float(r.json()["data"]["result"][0]["value"][1]) == LINES
        if ok_trace and ok_logs:
            return
        time.sleep(0.5)
    raise SystemExit("data not queryable in 60 s")


def measure(browser, url: str, first: str, scroller: str | None, rows: str, api_path: str) -> dict:
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    try:
        t0 = time.perf_counter()
        page.goto(url)
        page.wait_for_selector(first, timeout=60_000)
        load_ms = (time.perf_counter() - t0) * 1000
        api_ms = page.evaluate("""(p) => {
          const e = performance.getEntriesByType('resource').filter((r) => r.name.includes(p));
          return e.length ? e[e.length - 1].duration : null; }""", api_path)
        out = {"load_ms": load_ms, "api_ms": api_ms}
        if scroller:
            frames = sorted(page.evaluate(SCROLL_JS, scroller))
            out["frame_p50_ms"] = frames[len(frames) // 2]
            out["frame_p95_ms"] = frames[int(len(frames) * 0.95)]
        out["rows_in_dom"] = page.locator(rows).count()
        out["heap_mb"] = page.evaluate("performance.memory ? performance.memory.usedJSHeapSize / 1e6 : null")
        return out
    finally:
        page.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        node = LookoutProcess(Path(tmp) / "data", {"selfmon": {"interval": 0}}).start()
        try:
            load_logs(node.http)
            trace_id = load_trace(node.otlp_http)
            load_metrics(node.http)
            wait_queryable(node.http, trace_id)
            views = {
                f"logs, {LINES:,} lines": dict(
                    url=f"{node.http}/ui/logs?" + httpx.QueryParams(query='{app="bench"}', limit=LINES,
                                                                    **{"from": "now-1h"}).__str__(),
                    first="[data-testid=log-line]", scroller="[data-testid=log-lines]",
                    rows="[data-testid=log-line]", api_path="/loki/api/v1/query_range"),
                f"trace, {SPANS:,} spans": dict(
                    url=f"{node.http}/ui/traces/{trace_id}", first="[data-testid=span-row]",
                    scroller="[data-testid=span-list]", rows="[data-testid=span-row]", api_path="/api/traces/"),
                f"metrics, {SERIES} series x 240 points": dict(
                    url=f"{node.http}/ui/metrics?" + httpx.QueryParams(
                        query="rate(bench_requests_total[1m])", **{"from": "now-1h"}).__str__(),
                    first="[data-testid=chart] canvas", scroller=None, rows="[data-testid=legend-item]",
                    api_path="/api/v1/query_range"),
            }
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
                print(f"bench_ui: {args.runs} runs per view, medians (Chromium {browser.version}, "
                      f"{os.cpu_count()} CPUs)")
                for name, view in views.items():
                    runs = [measure(browser, **view) for _ in range(args.runs)]
                    med = {k: statistics.median(r[k] for r in runs) for k in runs[0] if runs[0][k] is not None}
                    figures = ", ".join(f"{k} {v:,.1f}" for k, v in med.items())
                    print(f"  {name}: {figures}")
                browser.close()
        finally:
            node.stop()


if __name__ == "__main__":
    main()
