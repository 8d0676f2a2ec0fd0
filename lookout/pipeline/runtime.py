"""A node's running pipelines: built from the validated ``pipeline:`` section, started and
stopped with the node, and reported on /metrics.

It knows no signal package: the trace store is handed in as a :class:`SpanStore`, and span
metrics leave as :class:`SeriesSample` lists that app.py turns into remote-write requests.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from lookout.pipeline.config import SignalPipeline
from lookout.pipeline.memory_limiter import MemoryLimiter
from lookout.pipeline.request import RequestPipeline
from lookout.pipeline.stats import ProcessorStats
from lookout.pipeline.stream import SpanStore, TraceStreamSink

_HELP = {
    "received_items": "Items (spans, log records, data points) a processor received.",
    "dropped_items": "Items a processor dropped, by reason.",
    "refused_items": "Items refused by the memory limiter (the client was told to retry).",
    "redacted_values": "Values (or parts of values) a redaction rule replaced, by rule.",
    "deleted_keys": "Attributes the redaction processor deleted (not in allowed_keys).",
}


class Pipelines:
    def __init__(self, specs: dict[str, SignalPipeline]) -> None:
        self.specs = specs
        self.stats: list[ProcessorStats] = []
        self.memory_limiters: list[MemoryLimiter] = []
        self.request: dict[str, RequestPipeline] = {}
        for signal, spec in specs.items():
            limiter = None
            if spec.memory_limiter is not None:
                name, cfg = spec.memory_limiter
                limiter = MemoryLimiter(name, signal, cfg)
                self.memory_limiters.append(limiter)
            processors = [entry.processor for entry in spec.request]
            if None in processors:  # parse_pipelines reported the problems; the caller ignored them
                raise ValueError(f"pipeline.{signal} has a processor with config errors")
            if processors or limiter is not None:
                pipeline = RequestPipeline(signal, processors, limiter)
                self.request[signal] = pipeline
                self.stats += pipeline.all_stats()
        self.observers: list[Any] = []
        self.trace_sink: TraceStreamSink | None = None
        traces = specs.get("traces")
        self._traces = traces
        self.generators = []  # span metrics / service graph, which collect() series for pushing
        if traces is not None:
            if traces.spanmetrics is not None:
                from lookout.pipeline.spanmetrics import SpanMetrics

                name, cfg = traces.spanmetrics
                self.generators.append(SpanMetrics(cfg, self._new_stats("traces", name)))
            if traces.servicegraph is not None:
                from lookout.pipeline.servicegraph import ServiceGraph

                name, cfg = traces.servicegraph
                self.generators.append(ServiceGraph(cfg, self._new_stats("traces", name)))

    def _new_stats(self, signal: str, name: str) -> ProcessorStats:
        stats = ProcessorStats(signal, name)
        self.stats.append(stats)
        return stats

    def wrap_trace_store(self, store: SpanStore) -> Any:
        """The trace consumer's sink: the store itself, or the stream processors in front of it."""
        traces = self._traces
        if traces is None or (traces.tail_sampling is None and not self.generators):
            return store
        factory = None
        if traces.tail_sampling is not None:
            from lookout.pipeline.tailsampling import TailSampler

            name, cfg = traces.tail_sampling
            stats = self._new_stats("traces", name)
            factory = functools.partial(_new_sampler, TailSampler, cfg, stats)
        self.trace_sink = TraceStreamSink(store, observers=list(self.generators), sampler_factory=factory)
        return self.trace_sink

    def start(self) -> None:
        for limiter in self.memory_limiters:
            limiter.start()

    def stop(self) -> None:
        for limiter in self.memory_limiters:
            limiter.stop()

    def generated_series(self) -> dict[str, list[Any]]:
        """Per tenant, the current cumulative span-metrics and service-graph series, exemplars
        limited to traces the sampler kept."""
        sink = self.trace_sink
        if sink is None or not self.generators:
            return {}
        out: dict[str, list[Any]] = defaultdict(list)
        with sink.observe_lock:
            for gen in self.generators:
                for tenant in gen.tenants():
                    out[tenant] += gen.collect(tenant, functools.partial(sink.decision, tenant))
        return dict(out)

    def collect(self) -> Iterable[tuple[str, str, str, list]]:
        """Registry collector: every processor counter, plus the tail sampler's gauges."""
        families: dict[str, list] = defaultdict(list)
        for stats in self.stats:
            for what, labels, value in stats.samples():
                families[f"lookout_processor_{what}_total"].append(
                    (f"lookout_processor_{what}_total", labels, value))
        for name in sorted(families):
            what = name.removeprefix("lookout_processor_").removesuffix("_total")
            yield name, "counter", _HELP.get(what, f"Processor counter: {what.replace('_', ' ')}."), families[name]
        if self.trace_sink is not None and self.trace_sink.sampler_factory is not None:
            pending = self.trace_sink.pending()
            for i, (metric, help_text) in enumerate((
                    ("lookout_tail_sampling_pending_traces", "Traces held waiting for their decision."),
                    ("lookout_tail_sampling_pending_spans", "Spans held waiting for their trace's decision."),
                    ("lookout_tail_sampling_pending_bytes", "Bytes of spans held for tail sampling."))):
                yield metric, "gauge", help_text, [(metric, {"tenant": t}, v[i]) for t, v in sorted(pending.items())]
        for limiter in self.memory_limiters:
            yield ("lookout_memory_limiter_usage_bytes", "gauge", "Process memory as the memory limiter sees it.",
                   [("lookout_memory_limiter_usage_bytes", {"processor": limiter.name}, limiter.usage)])


def _new_sampler(cls: type, cfg: Any, stats: ProcessorStats, tenant: str) -> Any:
    return cls(cfg, stats)
