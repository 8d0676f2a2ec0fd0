"""Ingest options shared by the OTLP and Loki push decoders, and the per-entry limits they apply.

Both decoders end in :func:`apply_limits`, so a stream or line that Loki would refuse is refused
here with Loki's reason name, whatever protocol it came by. Everything is vectorized over the
batch's entries; only per-stream checks run in Python (one loop over the distinct streams).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lookout.logs.schema import LogBatch, map_parts, map_rows, merge_refused

DEFAULT_STREAM_LABEL_ATTRIBUTES: tuple[str, ...] = (
    "service.name",
    "service.namespace",
    "service.instance.id",
    "deployment.environment",
    "deployment.environment.name",
    "cloud.region",
    "cloud.availability_zone",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.container.name",
    "container.name",
    "k8s.replicaset.name",
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
    "k8s.cronjob.name",
    "k8s.job.name",
)
"""Loki's default ``otlp_config`` resource attributes that become index (stream) labels."""

DEFAULT_DISCOVER_SERVICE_NAME: tuple[str, ...] = (
    "service", "app", "application", "app_name", "name", "app_kubernetes_io_name", "container",
    "container_name", "k8s_container_name", "component", "workload", "job", "k8s_job_name",
)
"""Loki's ``discover_service_name``: stream labels that stand in for a missing ``service.name``."""

SERVICE_NAME = "service_name"
UNKNOWN_SERVICE = "unknown_service"


@dataclass(slots=True)
class LogsIngestOptions:
    """How requests become streams and entries (Loki ``limits_config`` names in comments).

    Only ``stream_label_attributes`` become stream labels, whatever a client sends: that is what
    keeps stream cardinality bounded. Everything else becomes structured metadata."""

    stream_label_attributes: tuple[str, ...] = DEFAULT_STREAM_LABEL_ATTRIBUTES
    discover_service_name: tuple[str, ...] = DEFAULT_DISCOVER_SERVICE_NAME  # empty: no service_name
    max_line_bytes: int = 256 * 1024  # max_line_size; 0 = unlimited
    truncate_lines: bool = False  # max_line_size_truncate
    max_label_names_per_series: int = 15  # max_label_names_per_series
    max_label_name_length: int = 1024  # max_label_name_length
    max_label_value_length: int = 2048  # max_label_value_length
    max_structured_metadata_bytes: int = 64 * 1024  # max_structured_metadata_size; 0 = unlimited
    max_structured_metadata_entries: int = 128  # max_structured_metadata_entries_count; 0 = unlimited


def _stream_reason(labels: dict[str, str], opts: LogsIngestOptions) -> str | None:
    if len(labels) > opts.max_label_names_per_series:
        return "max_label_names_per_series"
    for name, value in labels.items():
        if len(name) > opts.max_label_name_length:
            return "label_name_too_long"
        if len(value) > opts.max_label_value_length:
            return "label_value_too_long"
    return None


def _refuse(keep: np.ndarray, bad: np.ndarray, reason: str, refused: dict[str, int]) -> None:
    """Mark ``bad`` entries not yet refused as refused for ``reason``."""
    newly = bad & keep
    n = int(newly.sum())
    if n:
        refused[reason] = refused.get(reason, 0) + n
        keep &= ~newly


def _metadata_sizes(md: pa.MapArray) -> tuple[np.ndarray, np.ndarray]:
    """(entries, name+value bytes) of each row's metadata map."""
    offsets, keys, values = map_parts(md)
    counts = np.diff(offsets)
    if len(keys) == 0:
        return counts, np.zeros(len(counts), np.int64)
    sizes = (pc.binary_length(keys).to_numpy(zero_copy_only=False)
             + pc.binary_length(values).fill_null(0).to_numpy(zero_copy_only=False))
    return counts, np.bincount(map_rows(offsets), weights=sizes, minlength=len(counts)).astype(np.int64)


def _truncate_bytes(lines: pa.Array, limit: int) -> list[str]:
    """Cut the (few) over-long lines to ``limit`` bytes, dropping a split trailing character."""
    cut = pc.binary_slice(pc.cast(lines, pa.binary()), 0, limit)
    return [b.decode("utf-8", "ignore") for b in cut.to_pylist()]


def apply_limits(batch: LogBatch, opts: LogsIngestOptions) -> LogBatch:
    """Refuse (or truncate) what Loki would, counting each refused entry by reason."""
    t = batch.entries
    if t.num_rows == 0:
        return batch
    refused = dict(batch.refused)
    keep = np.ones(t.num_rows, bool)
    sids = t.column("stream_id").combine_chunks()
    bad_streams = {sid: r for sid, lb in batch.streams.items() if (r := _stream_reason(lb, opts))}
    for sid, reason in bad_streams.items():
        _refuse(keep, pc.equal(sids, pa.scalar(sid, pa.uint64())).to_numpy(zero_copy_only=False), reason, refused)
    lines = t.column("line").combine_chunks()
    if opts.max_line_bytes > 0:
        too_long = pc.greater(pc.binary_length(lines), opts.max_line_bytes).to_numpy(zero_copy_only=False)
        if too_long.any():
            if opts.truncate_lines:
                idx = np.flatnonzero(too_long)
                fixed = _truncate_bytes(lines.take(pa.array(idx)), opts.max_line_bytes)
                py = lines.to_pylist()
                for j, i in enumerate(idx.tolist()):
                    py[i] = fixed[j]
                t = t.set_column(t.schema.get_field_index("line"), "line", pa.array(py, pa.string()))
            else:
                _refuse(keep, too_long, "line_too_long", refused)
    if opts.max_structured_metadata_entries > 0 or opts.max_structured_metadata_bytes > 0:
        counts, sizes = _metadata_sizes(t.column("metadata").combine_chunks())
        if opts.max_structured_metadata_entries > 0:
            _refuse(keep, counts > opts.max_structured_metadata_entries, "structured_metadata_too_many", refused)
        if opts.max_structured_metadata_bytes > 0:
            _refuse(keep, sizes > opts.max_structured_metadata_bytes, "structured_metadata_too_large", refused)
    if keep.all():
        return LogBatch(batch.streams, t, refused)
    t = t.filter(pa.array(keep))
    present = set(np.unique(t.column("stream_id").to_numpy()).tolist()) if t.num_rows else set()
    return LogBatch({s: lb for s, lb in batch.streams.items() if s in present}, t, merge_refused({}, refused))
