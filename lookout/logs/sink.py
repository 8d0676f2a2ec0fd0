"""Feeds the log store from the write-ahead log: decode each record by its format tag.

OTLP records of one tenant are decoded together (one ptars call); a record that fails to decode
is retried alone and, if it still fails, counted and skipped rather than wedging the consumer.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from lookout.buffer.log import Record
from lookout.config import Logs
from lookout.ingest import formats
from lookout.logs.ingest import LogsIngestOptions
from lookout.logs.loki_push import LokiPushError, decode_push_json, decode_push_protobuf
from lookout.logs.otlp_logs import decode_logs
from lookout.logs.schema import LogBatch, LogLimits
from lookout.logs.store import LogStore
from lookout.selfmon.registry import Registry

log = logging.getLogger(__name__)

_REFUSAL_SETTINGS = {
    "line_too_long": ("longer than the limit of {max_line_bytes} bytes", "logs.max_line_size"),
    "max_label_names_per_series": ("in streams with more than {max_label_names_per_series} labels", None),
    "label_name_too_long": ("in streams with a label name longer than {max_label_name_length} characters", None),
    "label_value_too_long": ("in streams with a label value longer than {max_label_value_length} characters",
                             None),
    "structured_metadata_too_many": ("with more than {max_structured_metadata_entries} structured metadata "
                                     "entries", None),
    "structured_metadata_too_large": ("with more than {max_structured_metadata_bytes} bytes of structured "
                                      "metadata", None),
}


class LokiPushValidator:
    """The receiver's check of a Loki push: decode it fully with the configured limits and refuse
    (400, nothing stored) a push with an entry the sink would refuse, so the receiver acks only
    what will be stored and a refusal is a clear error rather than a silent drop later."""

    def __init__(self, options: LogsIngestOptions, max_age_s: float) -> None:
        self.options = options
        self.max_age_s = max_age_s

    def protobuf(self, body: bytes, tenant: str = "") -> int:
        return self._check(decode_push_protobuf(body, self.options))

    def json(self, body: bytes, tenant: str = "") -> int:
        return self._check(decode_push_json(body, self.options))

    def _check(self, batch: LogBatch) -> int:
        for reason, n in sorted(batch.refused.items()):
            if n:
                what, setting = _REFUSAL_SETTINGS.get(reason, (f"refused ({reason})", None))
                where = f" ({setting})" if setting else ""
                what = what.format_map(dataclasses.asdict(self.options))
                raise LokiPushError(f"{n} log line(s) {what}{where}; nothing was stored")
        if self.max_age_s > 0 and batch.num_entries:
            oldest_ok = time.time_ns() - int(self.max_age_s * 1e9)
            ts = batch.entries.column("ts").to_numpy()
            old = int(np.count_nonzero(ts < oldest_ok))
            if old:
                first = datetime.fromtimestamp(int(ts.min()) / 1e9, UTC).isoformat()
                limit = datetime.fromtimestamp(oldest_ok / 1e9, UTC).isoformat()
                raise LokiPushError(f"{old} entries have timestamps too old (oldest {first}); the oldest "
                                    f"acceptable timestamp is {limit} (logs.reject_old_samples_max_age); "
                                    "nothing was stored")
        return batch.num_entries


def ingest_options(cfg: Logs) -> LogsIngestOptions:
    return LogsIngestOptions(stream_label_attributes=tuple(cfg.stream_labels), max_line_bytes=cfg.max_line_size)


def log_limits(cfg: Logs) -> LogLimits:
    return LogLimits(max_streams_per_tenant=100_000, max_line_bytes=cfg.max_line_size,
                     reject_old_samples_max_age_s=cfg.reject_old_samples_max_age)


def concat_log_batches(batches: list[LogBatch]) -> LogBatch:
    if len(batches) == 1:
        return batches[0]
    if not batches:
        return LogBatch.empty()
    streams: dict[int, dict[str, str]] = {}
    refused: dict[str, int] = {}
    for b in batches:
        streams.update(b.streams)
        for k, n in b.refused.items():
            refused[k] = refused.get(k, 0) + n
    return LogBatch(streams, pa.concat_tables([b.entries for b in batches]), refused)


class LogSink:
    def __init__(self, store: LogStore, options: LogsIngestOptions, registry: Registry) -> None:
        self.store = store
        self.options = options
        self._dropped = registry.counter(
            "lookout_logs_dropped_requests_total", "Accepted log requests that could not be decoded.")

    def _decode_one(self, tenant: str, fmt: str, body: bytes) -> LogBatch | None:
        try:
            if fmt == formats.LOKI_PUSH:
                return decode_push_protobuf(body, self.options)
            if fmt == formats.LOKI_JSON:
                return decode_push_json(body, self.options)
            return decode_logs(body, self.options)
        except Exception:
            self._dropped.inc(tenant=tenant, reason="decode_error")
            log.exception("logs: a %d-byte %s record of tenant %s could not be decoded; skipped",
                          len(body), fmt, tenant)
            return None

    def _decode(self, tenant: str, items: list[tuple[str, bytes]]) -> list[LogBatch]:
        otlp = [body for fmt, body in items if fmt == formats.OTLP]
        out: list[LogBatch] = []
        if len(otlp) > 1:
            try:
                out.append(decode_logs(otlp, self.options))
                items = [(f, b) for f, b in items if f != formats.OTLP]
            except Exception:
                pass  # decode one by one below, so only the bad record is skipped
        for fmt, body in items:
            batch = self._decode_one(tenant, fmt, body)
            if batch is not None:
                out.append(batch)
        return out

    def ingest(self, records: list[Record]) -> None:
        if not records:
            return
        by_tenant: dict[str, list[tuple[str, bytes]]] = {}
        for r in records:
            try:
                by_tenant.setdefault(r.tenant, []).append(formats.unwrap(r.payload))
            except ValueError:
                self._dropped.inc(tenant=r.tenant, reason="bad_format_byte")
                by_tenant.setdefault(r.tenant, [])
        hi = records[-1].next_offset
        for tenant, items in by_tenant.items():
            self.store.append(tenant, concat_log_batches(self._decode(tenant, items)), offset_hi=hi)

    @property
    def head_bytes(self) -> int:
        return self.store.head_bytes()

    def flush_due(self) -> bool:
        return self.store.flush_due()

    def flush(self, commit: Callable[[int], None]) -> Any:
        return self.store.flush(commit)
