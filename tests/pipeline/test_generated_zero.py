"""Generated counters start from 0, as Tempo's metrics generator writes them: a burst of spans
that all arrive before the first collection still has an increase() and a rate()."""

from __future__ import annotations

import httpx
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from lookout.metrics.generated import encode_generated
from lookout.metrics.remote_write import decode_write_request
from lookout.pipeline.series import SeriesSample
from tests.conftest import wait_for


def test_new_series_get_a_zero_at_the_previous_collection():
    body = encode_generated([SeriesSample({"__name__": "a_total"}, 5.0, new=True),
                             SeriesSample({"__name__": "b_total"}, 7.0)], t_ms=20_000, zero_ms=5_000)
    batch = decode_write_request(body)
    names = [dict((x["name"], x["value"]) for x in labels)["__name__"] for labels in batch.series["labels"].to_pylist()]
    got = {name: ([], []) for name in names}
    for ref, t, v in zip(*(batch.samples[c].to_pylist() for c in ("ref", "t", "v")), strict=True):
        got[names[ref]][0].append(t)
        got[names[ref]][1].append(v)
    assert got == {"a_total": ([5_000, 20_000], [0.0, 5.0]), "b_total": ([20_000], [7.0])}


def test_a_burst_before_the_first_collection_has_an_increase(lookout_factory):
    node = lookout_factory({"selfmon": {"interval": 0},
                            "pipeline": {"traces": [{"spanmetrics": {"collection_interval": "1s"}}]}})
    provider = TracerProvider(resource=Resource.create({"service.name": "burst"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{node.otlp_http}/v1/traces")))
    tracer = provider.get_tracer("t")
    for _ in range(12):
        with tracer.start_as_current_span("job", kind=SpanKind.SERVER):
            pass
    provider.shutdown()

    def query(q: str) -> list:
        r = httpx.get(f"{node.http}/api/v1/query", params={"query": q})
        assert r.status_code == 200, r.text
        return r.json()["data"]["result"]

    sel = 'traces_spanmetrics_calls_total{service="burst"}'
    raw = wait_for(lambda: (r := query(f"{sel}[1m]")) and r)
    values = [float(v) for _, v in raw[0]["values"]]
    assert values[0] == 0.0 and values[1] == 12.0  # 0 at the previous collection, then the count
    increase = float(query(f"sum(increase({sel}[1m]))")[0]["value"][1])
    assert increase >= 12.0  # extrapolated to the window; 0 without the initial sample
