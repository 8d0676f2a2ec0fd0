"""The node scrapes itself: its own /metrics go into its metrics store, as a Prometheus server
scraping itself would, so the platform can graph and alert on its own health.

The samples take the same path as any remote write (receiver checks, write-ahead log, consumer),
so they are durable and counted like everything else, under ``job="lookout"`` in their own tenant
(``selfmon.tenant``) so they never mix with a team's series.
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np

from lookout.ingest import formats
from lookout.ingest.receiver import BadRequest, Overloaded, Receiver, TooLarge
from lookout.metrics.batch import MetricMetadata
from lookout.metrics.remote_write import encode_write_request
from lookout.selfmon.registry import Registry

log = logging.getLogger(__name__)

_KINDS = {"counter": "counter", "gauge": "gauge", "histogram": "histogram", "summary": "summary"}


def scrape_request(registry: Registry, job: str, instance: str, t_ms: int) -> bytes:
    """One remote-write request holding every sample of the registry at ``t_ms``."""
    series, metadata = [], []
    t = np.array([t_ms], dtype=np.int64)
    for name, kind, help_text, samples in registry.families():
        metadata.append(MetricMetadata(name, _KINDS.get(kind, "unknown"), "", help_text))
        for sample_name, labels, value in samples:
            lb = {k: v for k, v in labels.items() if v}
            lb.update({"__name__": sample_name, "job": job, "instance": instance})
            series.append((lb, t, np.array([value], dtype=np.float64)))
    series.append(({"__name__": "up", "job": job, "instance": instance}, t, np.array([1.0])))
    return encode_write_request(series, metadata)


async def run_self_scrape(registry: Registry, receiver: Receiver, *, tenant: str, interval_s: float,
                          instance: str, stop: asyncio.Event) -> None:
    """Scrape every ``interval_s`` until ``stop``; a refused scrape is logged and retried next time."""
    while not stop.is_set():
        try:
            body = scrape_request(registry, "lookout", instance, int(time.time() * 1000))
            await receiver.export("metrics", tenant, body, fmt=formats.PROM_REMOTE_WRITE)
        except (BadRequest, TooLarge, Overloaded) as e:
            log.warning("self-scrape refused: %s", e)
        except Exception:
            log.exception("self-scrape failed")
        try:
            await asyncio.wait_for(stop.wait(), interval_s)
        except TimeoutError:
            pass
