"""Micro-benchmark: spans/s of decode_traces (ptars + pyarrow) vs decode_traces_reference (upb + loops).

Request shape as in design/hot-path-measurements.md section 1: 50 ResourceSpans with 10 resource
attributes and one scope each, 20 spans per scope, 10 string/int attributes per span, parent
chains of 5, 5 % errors with an exception event. Prints the median of 5 timed samples (each at
least 0.6 s) after a warm-up. Also times a batch of 20 joined 50-span requests, the shape the
pipeline sees when clients send small requests.

    .venv/bin/python bench/bench_decode.py
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from lookout.otlp import decode_traces, decode_traces_reference, validate_request


def make_request(n_resources: int = 50, spans_per_scope: int = 20, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    request = ExportTraceServiceRequest()
    routes = [f"/api/v1/items/{i}" for i in range(20)]
    for r in range(n_resources):
        rs = request.resource_spans.add()
        rs.resource.attributes.append(
            KeyValue(key="service.name", value=AnyValue(string_value=f"svc-{r % 12}"))
        )
        for i in range(9):
            rs.resource.attributes.append(
                KeyValue(key=f"res.attr{i}", value=AnyValue(string_value=f"v{r}-{i}"))
            )
        ss = rs.scope_spans.add()
        ss.scope.name = "io.opentelemetry.instrumentation"
        ss.scope.version = "1.2.3"
        trace_id, parent = rng.randbytes(16), b""
        for k in range(spans_per_scope):
            if k % 5 == 0:
                trace_id, parent = rng.randbytes(16), b""
            start = 1_700_000_000_000_000_000 + rng.randrange(10**12)
            span = ss.spans.add(
                trace_id=trace_id,
                span_id=rng.randbytes(8),
                parent_span_id=parent,
                name=rng.choice(["GET /api", "SELECT", "publish", "handle"]),
                kind=rng.randint(1, 5),
                start_time_unix_nano=start,
                end_time_unix_nano=start + rng.randrange(10**9),
            )
            parent = span.span_id
            for i in range(10):
                if i % 2:
                    value = AnyValue(int_value=rng.randrange(1000))
                else:
                    value = AnyValue(string_value=rng.choice(routes))
                span.attributes.append(KeyValue(key=f"attr.{i}", value=value))
            if rng.random() < 0.05:
                span.status.code = 2
                ev = span.events.add(time_unix_nano=start + 1, name="exception")
                ev.attributes.append(KeyValue(key="exception.message", value=AnyValue(string_value="boom")))
    return request.SerializeToString()


def median_rate(fn: Callable[[], object], items: int, samples: int = 5, min_seconds: float = 0.6) -> float:
    fn()  # warm-up
    rates = []
    for _ in range(samples):
        loops, t0 = 0, time.perf_counter()
        while True:
            fn()
            loops += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= min_seconds:
                break
        rates.append(items * loops / elapsed)
    return statistics.median(rates)


def main() -> None:
    big = make_request()
    small = [make_request(5, 10, seed=s) for s in range(20)]
    print(f"request: 1,000 spans, {len(big):,} bytes; batch: 20 x 50 spans")
    for label, payloads in (("1 x 1000-span request", [big]), ("20 x 50-span requests, joined", small)):
        spans = decode_traces(payloads).num_rows
        fast = median_rate(lambda p=payloads: decode_traces(p), spans)
        ref = median_rate(lambda p=payloads: decode_traces_reference(p), spans)
        print(
            f"{label:32s} decode_traces {fast:10,.0f} spans/s   reference {ref:10,.0f} spans/s   "
            f"({fast / ref:.1f}x)"
        )
    one_small = small[0]
    for label, body, spans in (("validate 1000-span", big, 1000), ("validate 50-span", one_small, 50)):
        rate = median_rate(lambda b=body: validate_request("traces", b), spans)
        print(f"{label:32s} validate_request {rate:10,.0f} spans/s ({spans / rate * 1e6:.0f} us/request)")


if __name__ == "__main__":
    main()
