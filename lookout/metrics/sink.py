"""Feeds the metrics store from the write-ahead log: decode each record by its format tag.

The receiver already checked every record, so a record that fails to decode here is a bug or a
corrupt log: it is counted and skipped rather than wedging the consumer. OTLP delta state lives
per tenant in its translator, so tenants never share (or exhaust) each other's state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from lookout.buffer.log import Record
from lookout.config import Metrics
from lookout.ingest import formats
from lookout.ingest.receiver import Overloaded
from lookout.metrics.batch import MetricBatch, concat_batches
from lookout.metrics.head import MetricsLimits
from lookout.metrics.otlp_translate import DeltaToCumulative, OtlpMetricsTranslator, TranslationOptions
from lookout.metrics.remote_write import decode_write_request_counted
from lookout.metrics.store import MetricsStore
from lookout.selfmon.registry import Registry

log = logging.getLogger(__name__)


def translation_options(cfg: Metrics) -> TranslationOptions:
    return TranslationOptions(translation_strategy=cfg.translation_strategy,
                              promote_resource_attributes=list(cfg.promote_resource_attributes),
                              keep_identifying_resource_attributes=cfg.keep_identifying_resource_attributes,
                              lookback_delta_ms=int(cfg.lookback_delta * 1000))


def metrics_limits(cfg: Metrics) -> MetricsLimits:
    return MetricsLimits(max_active_series_per_tenant=cfg.max_active_series,
                         out_of_order_window_ms=int(cfg.out_of_order_time_window * 1000))


class RemoteWriteValidator:
    """The receiver's check of a remote-write body: its item count, or ValueError; a 429 naming
    ``metrics.max_active_series`` when the tenant is full and the request brings new series.

    Items are samples, exemplars and native histogram samples (refused and counted by the sink,
    never dropped unseen here); a request carrying only metadata counts as one item, since
    Prometheus sends metadata in requests of their own and those must reach the store too."""

    def __init__(self, store: MetricsStore, setting: str = "metrics.max_active_series") -> None:
        self.store = store
        self.setting = setting

    def __call__(self, body: bytes, tenant: str = "") -> int:
        batch, refused = decode_write_request_counted(body)
        if tenant and self.store.would_exceed_series_limit(tenant, batch):
            raise Overloaded(f"tenant {tenant} has reached its limit of "
                             f"{self.store.limits.max_active_series_per_tenant} active series ({self.setting}); "
                             "this request adds new series", 30.0, reason="series_limit")
        items = batch.num_samples + batch.exemplars.num_rows + sum(refused.values())
        return items or (1 if batch.metadata else 0)


class MetricsSink:
    def __init__(self, store: MetricsStore, options: TranslationOptions, registry: Registry) -> None:
        self.store = store
        self.options = options
        self._translators: dict[str, OtlpMetricsTranslator] = {}
        self._dropped = registry.counter(
            "lookout_metrics_dropped_requests_total", "Accepted metrics requests that could not be decoded.")
        self._refused_points = registry.counter(
            "lookout_metrics_refused_data_points_total",
            "Data points not turned into samples, by reason (OTLP delta that cannot be converted, remote-write "
            "native histograms, ...).")

    def _translator(self, tenant: str) -> OtlpMetricsTranslator:
        t = self._translators.get(tenant)
        if t is None:
            t = self._translators[tenant] = OtlpMetricsTranslator(self.options, DeltaToCumulative())
        return t

    def _decode(self, record: Record) -> MetricBatch | None:
        try:
            fmt, body = formats.unwrap(record.payload)
            if fmt == formats.PROM_REMOTE_WRITE:
                batch, refused = decode_write_request_counted(body)
            else:
                result = self._translator(record.tenant).translate(body)
                batch, refused = result.batch, result.refused
            for reason, n in refused.items():
                self._refused_points.inc(n, tenant=record.tenant, reason=reason)
            return batch
        except Exception:
            self._dropped.inc(tenant=record.tenant, reason="decode_error")
            log.exception("metrics: a %d-byte record of tenant %s could not be decoded; skipped",
                          len(record.payload), record.tenant)
            return None

    def ingest(self, records: list[Record]) -> None:
        """Decode records, then append one concatenated batch per tenant."""
        if not records:
            return
        by_tenant: dict[str, list[MetricBatch]] = {}
        for r in records:
            batch = self._decode(r)
            by_tenant.setdefault(r.tenant, [])
            if batch is not None and (batch.num_samples or batch.exemplars.num_rows or batch.metadata):
                by_tenant[r.tenant].append(batch)
        hi = records[-1].next_offset
        for tenant, batches in by_tenant.items():
            if batches:
                self.store.append(tenant, concat_batches(batches), offset_hi=hi)
        self.store.mark_consumed(hi)

    @property
    def head_bytes(self) -> int:
        return self.store.head_bytes()

    def flush_due(self) -> bool:
        return self.store.flush_due()

    def flush(self, commit: Callable[[int], None]) -> Any:
        return self.store.flush(commit)
