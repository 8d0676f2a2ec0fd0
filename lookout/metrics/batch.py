"""The unit handed from ingest (OTLP translation, remote write) to the metrics store.

Columnar so that a request of 10,000 series x N samples crosses into the store without a Python
object per sample. Series are referenced by their row number in ``series``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

LABEL = pa.struct([pa.field("name", pa.string(), nullable=False), pa.field("value", pa.string(), nullable=False)])
LABELS = pa.list_(LABEL)

# one row per distinct series in the request; ``labels`` sorted by name, names unique,
# ``__name__`` included, no empty values (an empty value means "no such label" in Prometheus)
SERIES_SCHEMA = pa.schema([pa.field("labels", LABELS, nullable=False)])

# one row per sample; ``ref`` is the row of its series in ``series``. Stale markers are the
# StaleNaN bit pattern (lookout.metrics.model.STALE_NAN).
SAMPLE_SCHEMA = pa.schema(
    [
        pa.field("ref", pa.uint32(), nullable=False),
        pa.field("t", pa.int64(), nullable=False),  # Unix milliseconds
        pa.field("v", pa.float64(), nullable=False),
    ]
)

# exemplars: trace and span ids travel as the labels "trace_id"/"span_id" (lowercase hex), as
# Prometheus' OTLP translation does.
EXEMPLAR_SCHEMA = pa.schema(
    [
        pa.field("ref", pa.uint32(), nullable=False),
        pa.field("t", pa.int64(), nullable=False),
        pa.field("v", pa.float64(), nullable=False),
        pa.field("labels", LABELS, nullable=False),
    ]
)


@dataclass(frozen=True, slots=True)
class MetricMetadata:
    """Metric family metadata as /api/v1/metadata reports it. ``type`` is one of Prometheus'
    metric types: counter, gauge, histogram, gaugehistogram, summary, info, stateset, unknown."""

    metric: str
    type: str
    unit: str = ""
    help: str = ""


@dataclass(slots=True)
class MetricBatch:
    series: pa.Table
    samples: pa.Table
    exemplars: pa.Table = field(default_factory=EXEMPLAR_SCHEMA.empty_table)
    metadata: list[MetricMetadata] = field(default_factory=list)

    @property
    def num_samples(self) -> int:
        return self.samples.num_rows

    @staticmethod
    def empty() -> MetricBatch:
        return MetricBatch(SERIES_SCHEMA.empty_table(), SAMPLE_SCHEMA.empty_table())


def concat_batches(batches: list[MetricBatch]) -> MetricBatch:
    """One batch from several (the requests of one tenant read from the log together), so the store
    pays its per-append cost once. Series are not merged across batches; refs are shifted."""
    if len(batches) == 1:
        return batches[0]
    if not batches:
        return MetricBatch.empty()
    offsets, total = [], 0
    for b in batches:
        offsets.append(total)
        total += b.series.num_rows

    def shifted(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
        parts = []
        for off, t in zip(offsets, tables, strict=True):
            if t.num_rows:
                ref = pc.add(t["ref"], pa.scalar(off, pa.uint32()))
                parts.append(t.set_column(0, schema.field("ref"), ref))
        return pa.concat_tables(parts).cast(schema) if parts else schema.empty_table()

    return MetricBatch(
        series=pa.concat_tables([b.series.cast(SERIES_SCHEMA) for b in batches]),
        samples=shifted([b.samples for b in batches], SAMPLE_SCHEMA),
        exemplars=shifted([b.exemplars for b in batches], EXEMPLAR_SCHEMA),
        metadata=[m for b in batches for m in b.metadata],
    )
