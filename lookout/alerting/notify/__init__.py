"""Lookout's built-in, Alertmanager-compatible notifier, and a sender for external Alertmanagers.

Two modes, chosen by config:

* :class:`Notifier` — Alertmanager inside Lookout: an ``alertmanager.yml`` drives routing,
  grouping, inhibition, silences, time intervals and receivers, and :meth:`Notifier.routes`
  serves the Alertmanager v2 API so ``amtool`` and Grafana work against Lookout.
* :class:`ExternalAlertmanager` — "send to my Alertmanager instead": alerts are POSTed to each
  configured Alertmanager's ``/api/v2/alerts`` with the same JSON Prometheus sends.

Both expose ``put(alerts)``, which never blocks the rule evaluator: state changes are in memory
and every network call happens in asyncio tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import httpx
from starlette.routing import Route

from lookout.alerting.amconfig import AlertmanagerConfig
from lookout.alerting.model import Alert
from lookout.alerting.notify.api_v2 import make_routes
from lookout.alerting.notify.dispatcher import Dispatcher
from lookout.alerting.notify.receivers import ReceiverSet, format_time
from lookout.alerting.notify.silences import Silences

log = logging.getLogger(__name__)

__all__ = ["ExternalAlertmanager", "Notifier", "alerts_to_postable"]

VERSION = "lookout-0.1.0"


class Notifier:
    """Everything Alertmanager does, for one Lookout process.

    ``backoff_initial``/``backoff_max`` bound delivery retries (Alertmanager-like 1s → 60s);
    ``silence_gc_interval`` is how often long-expired silences are deleted."""

    def __init__(self, cfg: AlertmanagerConfig, db_path: str | Path, *, external_url: str = "",
                 clock: Callable[[], float] = time.time, backoff_initial: float = 1.0, backoff_max: float = 60.0,
                 silence_retention: float = 120 * 3600.0, silence_gc_interval: float = 900.0) -> None:
        self.cfg = cfg
        self.clock = clock
        self.external_url = external_url.rstrip("/")
        self.version = VERSION
        self.started_at = clock()
        self._backoff = (backoff_initial, backoff_max)
        self.silences = Silences(db_path, clock=clock, retention=silence_retention)
        self.receivers = ReceiverSet(cfg.receivers, backoff_initial=backoff_initial, backoff_max=backoff_max)
        self.dispatcher = Dispatcher(cfg, self.silences, self.receivers, external_url=self.external_url, clock=clock)
        self._gc_interval = silence_gc_interval
        self._gc_task: asyncio.Task[None] | None = None
        self._old_receivers: list[ReceiverSet] = []

    async def start(self) -> None:
        self.started_at = self.clock()
        await self.dispatcher.start()
        self._gc_task = asyncio.get_running_loop().create_task(self._gc_loop())

    async def stop(self) -> None:
        if self._gc_task is not None:
            self._gc_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._gc_task
            self._gc_task = None
        await self.dispatcher.stop()
        for rs in [self.receivers, *self._old_receivers]:
            await rs.aclose()
        self._old_receivers.clear()
        self.silences.close()

    async def _gc_loop(self) -> None:
        while True:
            await asyncio.sleep(self._gc_interval)
            try:
                n = self.silences.gc()
                if n:
                    log.info("deleted %d long-expired silence(s)", n)
            except Exception:
                log.exception("silence GC failed")

    def put(self, alerts: Iterable[Alert]) -> None:
        """Hand alerts to the dispatcher; returns at once (delivery is asynchronous)."""
        self.dispatcher.put(alerts)

    def reload(self, cfg: AlertmanagerConfig) -> None:
        """Apply a new config without losing alerts, silences or the notification log."""
        old = self.receivers
        self.cfg = cfg
        self.receivers = ReceiverSet(cfg.receivers, backoff_initial=self._backoff[0], backoff_max=self._backoff[1])
        # Keep counters for receivers that survive the reload.
        self.receivers._stats = {k: v for k, v in old._stats.items() if k in cfg.receivers}
        self.receivers.client = old.client
        old.client = None
        self._old_receivers.append(old)
        self.dispatcher.reload(cfg, self.receivers)

    def routes(self) -> list[Route]:
        """The Alertmanager v2 API (``/api/v2/...``) as starlette routes."""
        return make_routes(self)

    def stats(self) -> dict[str, Any]:
        """Per-receiver delivery counters plus alert/group/silence counts, for /metrics and the UI."""
        now = self.clock()
        sil_states: dict[str, int] = {"active": 0, "pending": 0, "expired": 0}
        for s in self.silences.query():
            sil_states[s.state(now)] += 1
        return {
            "receivers": self.receivers.stats(),
            "alerts": len(self.dispatcher.active_alerts()),
            "groups": len(self.dispatcher.groups),
            "silences": sil_states,
        }

    async def flush_due(self) -> None:
        """Run every due flush and wait for its deliveries (tests with a fake clock)."""
        self.dispatcher.run_due()
        await self.dispatcher.drain()


def alerts_to_postable(alerts: Iterable[Alert]) -> list[dict[str, Any]]:
    """The JSON Prometheus POSTs to ``/api/v2/alerts``."""
    out = []
    for a in alerts:
        d: dict[str, Any] = {"labels": dict(a.labels), "annotations": dict(a.annotations)}
        if a.starts_at:
            d["startsAt"] = format_time(a.starts_at)
        if a.ends_at:
            d["endsAt"] = format_time(a.ends_at)
        if a.generator_url:
            d["generatorURL"] = a.generator_url
        out.append(d)
    return out


class ExternalAlertmanager:
    """Send alerts to real Alertmanagers, the way Prometheus's notifier does.

    ``put`` queues (bounded, oldest dropped first, like Prometheus's ``--alertmanager.notification-queue-capacity``);
    a background task sends batches of up to ``batch_size`` to every URL concurrently. Failures
    are counted and logged per URL, never raised."""

    def __init__(self, urls: Sequence[str], *, timeout: float = 10.0, queue_capacity: int = 10000,
                 batch_size: int = 64) -> None:
        self.urls = [u.rstrip("/") for u in urls]
        self.timeout = timeout
        self.batch_size = batch_size
        self._queue: deque[Alert] = deque(maxlen=queue_capacity)
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self.dropped = 0
        self._stats: dict[str, dict[str, Any]] = {u: {"sent": 0, "failed": 0, "last_error": ""} for u in self.urls}

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._client = httpx.AsyncClient(headers={"User-Agent": "Lookout"})
        self._task = self._loop.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._queue:
            await self._send_pending()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def put(self, alerts: Iterable[Alert]) -> None:
        """Queue alerts for sending; never blocks."""
        batch = list(alerts)
        over = len(self._queue) + len(batch) - (self._queue.maxlen or 0)
        if over > 0:
            self.dropped += over
        self._queue.extend(batch)
        if self._wake is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._send_pending()

    async def _send_pending(self) -> None:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
            await self.send(batch)

    async def send(self, alerts: Sequence[Alert]) -> bool:
        """POST ``alerts`` to every Alertmanager now; True if at least one accepted them."""
        body = alerts_to_postable(alerts)
        client = self._client or httpx.AsyncClient()
        try:
            results = await asyncio.gather(*(self._post_one(client, u, body) for u in self.urls))
        finally:
            if client is not self._client:
                await client.aclose()
        return any(results)

    async def _post_one(self, client: httpx.AsyncClient, url: str, body: list[dict[str, Any]]) -> bool:
        st = self._stats.setdefault(url, {"sent": 0, "failed": 0, "last_error": ""})
        try:
            resp = await client.post(f"{url}/api/v2/alerts", json=body, timeout=self.timeout)
            if resp.status_code // 100 != 2:
                raise RuntimeError(f"unexpected status {resp.status_code}: {resp.text[:200]}")
        except Exception as e:
            st["failed"] += 1
            st["last_error"] = f"{type(e).__name__}: {e}"
            log.warning("sending %d alert(s) to Alertmanager %s failed: %s", len(body), url, st["last_error"])
            return False
        st["sent"] += 1
        return True

    def stats(self) -> dict[str, Any]:
        return {"alertmanagers": {u: dict(s) for u, s in self._stats.items()}, "queued": len(self._queue),
                "dropped": self.dropped}
