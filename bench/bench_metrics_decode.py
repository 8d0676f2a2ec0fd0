"""Decode throughput of metric ingest formats (prints samples/s; not a test).

Run: ``.venv/bin/python bench/bench_metrics_decode.py``. Remote write: 10,000 series x 10 samples,
10 labels each. OTLP: 10,000 gauge/sum data points with 8 attributes (plus a 1,000-point histogram
request with 10 bounds), 10 resources.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from lookout.metrics.otlp_translate import OtlpMetricsTranslator, TranslationOptions
from lookout.metrics.remote_write import decode_write_request, encode_write_request

T0 = 1_700_000_000_000


def _timed(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def remote_write_body(nseries: int = 10_000, per: int = 10) -> bytes:
    t = T0 + np.arange(per, dtype=np.int64) * 15_000
    series = [
        ({"__name__": f"metric_{i % 50}", "instance": f"host-{i % 100}:9100", "job": "node",
          **{f"l{k}": f"v{i % (k + 7)}" for k in range(7)}, "idx": str(i)}, t, np.random.rand(per))
        for i in range(nseries)
    ]  # fmt: skip
    return encode_write_request(series)


def otlp_body(npoints: int = 10_000, histogram: bool = False) -> bytes:
    req = ExportMetricsServiceRequest()
    per_res = npoints // 10
    for r in range(10):
        rm = req.resource_metrics.add()
        for k, v in (("service.name", f"svc{r}"), ("service.instance.id", f"i{r}"), ("host.name", "h")):
            rm.resource.attributes.add(key=k, value=AnyValue(string_value=v))
        sm = rm.scope_metrics.add()
        sm.scope.name = "bench"
        for j in range(50):
            metric = sm.metrics.add(name=f"bench.metric.{j}", unit="s" if histogram else "By")
            if histogram:
                data = metric.histogram
                data.aggregation_temporality = 2
            else:
                data = metric.sum if j % 2 else metric.gauge
                if j % 2:
                    data.aggregation_temporality, data.is_monotonic = 2, True
            for p in range(per_res // 50):
                dp = data.data_points.add(time_unix_nano=T0 * 10**6, start_time_unix_nano=(T0 - 60_000) * 10**6)
                dp.attributes.extend(
                    [KeyValue(key=f"attr.{k}", value=AnyValue(string_value=f"v{p % (k + 5)}")) for k in range(7)]
                    + [KeyValue(key="idx", value=AnyValue(int_value=p))]
                )
                if histogram:
                    dp.explicit_bounds.extend([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5])
                    dp.bucket_counts.extend([1] * 11)
                    dp.count, dp.sum = 11, 3.0
                else:
                    dp.as_double = p * 1.5
    return req.SerializeToString()


def main() -> None:
    body = remote_write_body()
    n = decode_write_request(body).num_samples
    sec = _timed(lambda: decode_write_request(body))
    print(f"remote write: {len(body) / 1e6:.2f} MB snappy, {n} samples / 10,000 series: "
          f"{sec * 1e3:.1f} ms -> {n / sec:,.0f} samples/s")  # fmt: skip
    translator = OtlpMetricsTranslator(TranslationOptions(), None)
    for label, payload in (("OTLP gauge/sum", otlp_body()), ("OTLP histogram", otlp_body(1_000, histogram=True))):
        res = translator.translate(payload)
        n = res.batch.num_samples
        sec = _timed(lambda p=payload: translator.translate(p))
        print(f"{label}: {len(payload) / 1e6:.2f} MB, {n} samples / {res.batch.series.num_rows} series: "
              f"{sec * 1e3:.1f} ms -> {n / sec:,.0f} samples/s")  # fmt: skip


if __name__ == "__main__":
    main()
