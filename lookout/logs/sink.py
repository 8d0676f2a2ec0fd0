"""Feeds the log store from the write-ahead log: decode each record by its format tag.

OTLP records of one tenant are decoded together (one ptars call); a record that fails to decode
is retried alone and, if it still fails, counted and skipped rather than wedging the consumer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from lookout.buffer.log import Record
from lookout.config import Logs
from lookout.ingest import formats
from lookout.logs.ingest import LogsIngestOptions
from lookout.logs.loki_push import decode_push_json, decode_push_protobuf, validate_push_json, validate_push_protobuf
from lookout.logs.otlp_logs import decode_logs
from lookout.logs.schema import LogBatch, LogLimits
from lookout.logs.store import LogStore
from lookout.selfmon.registry import Registry

log = logging.getLogger(__name__)

validate_loki_protobuf = validate_push_protobuf
validate_loki_json = validate_push_json


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
