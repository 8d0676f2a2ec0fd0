"""Metrics the trace pipeline generates (span metrics, service graph) enter the metrics store
the way any remote-write client's would: as a remote-write request through the receiver, so
they are durable in the log, counted, limited per tenant, and queryable by PromQL.

This is what Tempo's metrics-generator does with its remote write; the interval is its
``collection_interval`` (15 s by default). Series are cumulative; exemplars point at traces the
tail sampler kept.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lookout.ingest import formats
from lookout.ingest.receiver import BadRequest, Overloaded, Receiver, TooLarge
from lookout.metrics.batch import MetricMetadata
from lookout.metrics.remote_write import encode_write_request

log = logging.getLogger(__name__)


def _metadata(samples: Sequence[Any]) -> list[MetricMetadata]:
    families: dict[str, str] = {}
    for s in samples:
        name = s.labels.get("__name__", "")
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and not name.endswith("_total"):
                families.setdefault(name.removesuffix(suffix), "histogram")
                break
        else:
            families.setdefault(name, "counter" if name.endswith("_total") else "gauge")
    return [MetricMetadata(name, kind, "", "") for name, kind in sorted(families.items())]


def encode_generated(samples: Sequence[Any], t_ms: int, zero_ms: int | None = None) -> bytes:
    """One remote-write body: every sample at ``t_ms``, its exemplar (if any) beside it.

    A series seen for the first time also gets a 0 at ``zero_ms`` (the previous collection, when
    it did not exist yet), as Tempo's generator does: without it, a counter whose first sample
    is already 30 has no increase() and no rate() until it changes again, and a service map or
    an alert over a short-lived burst shows nothing."""
    t = np.array([t_ms], dtype=np.int64)
    t_new = np.array([zero_ms, t_ms], dtype=np.int64) if zero_ms is not None and zero_ms < t_ms else None
    series, exemplars = [], []
    for s in samples:
        if t_new is not None and s.new:
            series.append((s.labels, t_new, np.array([0.0, s.value], dtype=np.float64)))
        else:
            series.append((s.labels, t, np.array([s.value], dtype=np.float64)))
        ex = s.exemplar
        exemplars.append([({"trace_id": ex.trace_id.hex(), "span_id": ex.span_id.hex()}, float(ex.value), ex.t_ms)]
                         if ex is not None else [])
    return encode_write_request(series, _metadata(samples), exemplars)


async def push_once(collect: Callable[[], dict[str, list[Any]]], receiver: Receiver, now_ms: int,
                    previous_ms: int | None = None) -> int:
    """Collect every tenant's series and append them at ``now_ms`` (new series start from a 0
    at ``previous_ms``, the previous push's timestamp); returns the samples sent."""
    sent = 0
    for tenant, samples in collect().items():
        if not samples:
            continue
        try:
            await receiver.export("metrics", tenant, encode_generated(samples, now_ms, previous_ms),
                                  fmt=formats.PROM_REMOTE_WRITE)
            sent += len(samples)
        except (BadRequest, TooLarge, Overloaded) as e:
            log.warning("generated metrics of tenant %s refused: %s", tenant, e)
    return sent


async def run_generated_push(collect: Callable[[], dict[str, list[Any]]], receiver: Receiver, *,
                             interval_s: float, stop: asyncio.Event) -> None:
    """Push every ``interval_s`` until ``stop`` (counts since the last push are not stored at
    shutdown: the receiver is closed by then; Prometheus' counter-reset handling covers the
    restart)."""
    previous_ms = int(time.time() * 1000)
    while True:
        try:
            await asyncio.wait_for(stop.wait(), interval_s)
            return
        except TimeoutError:
            pass
        now_ms = int(time.time() * 1000)
        try:
            await push_once(collect, receiver, now_ms, previous_ms)
        except Exception:
            log.exception("pushing generated metrics failed")
        previous_ms = now_ms
