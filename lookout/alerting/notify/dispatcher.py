"""The dispatcher: route alerts into aggregation groups and flush groups to receivers on timers.

This is Alertmanager's ``dispatch`` package plus its notification pipeline, in one event loop:

* **Routing** (``dispatch/route.go``): an alert walks the tree depth-first; at each node the
  first matching child wins unless it has ``continue: true``; a node with no matching child
  matches itself. Children inherit ``receiver``, ``group_by`` and the three timers from their
  parent, but not ``mute_time_intervals``/``active_time_intervals``.
* **Grouping** (``dispatch/dispatch.go``): one aggregation group per (route, values of the
  ``group_by`` labels; ``...`` = all labels). A new group waits ``group_wait`` before its first
  flush (at once if the alert is older than that), then flushes every ``group_interval``.
* **Pipeline** per flush: drop inhibited alerts, skip the whole flush inside a mute interval or
  outside an active one, drop silenced alerts; then per integration decide, from the
  notification log, whether anything changed (new firing alert, newly resolved alert with
  ``send_resolved``) or ``repeat_interval`` has passed, exactly as Alertmanager's ``DedupStage``.
* Firing alerts are sent with ``endsAt`` zeroed; resolved alerts leave the group once a flush
  has delivered them; an empty group is removed.

``put()`` only updates in-memory state and is safe from any thread: it never awaits and never
does I/O. Deliveries run in asyncio tasks with retries bounded by ``group_interval``. The clock is
injectable; :meth:`Dispatcher.run_due` runs everything due *now*, which is what both the
background loop and tests with a fake clock call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

from lookout.alerting.amconfig import (
    DEFAULT_GROUP_INTERVAL,
    DEFAULT_GROUP_WAIT,
    DEFAULT_REPEAT_INTERVAL,
    AlertmanagerConfig,
    RouteConfig,
)
from lookout.alerting.matchers import Matcher, matches_all
from lookout.alerting.model import Alert
from lookout.alerting.notify.inhibit import Inhibitor
from lookout.alerting.notify.receivers import Notification, ReceiverSet
from lookout.alerting.notify.silences import Silences
from lookout.alerting.notify.timeintervals import in_any

log = logging.getLogger(__name__)

__all__ = ["Route", "Dispatcher", "AggrGroup", "build_routes"]


@dataclass(eq=False)
class Route:
    """A routing tree node with inherited options resolved."""

    receiver: str
    group_by: frozenset[str]
    group_by_all: bool
    group_wait: float
    group_interval: float
    repeat_interval: float
    matchers: list[Matcher]
    continue_: bool = False
    mute_time_intervals: list[str] = field(default_factory=list)
    active_time_intervals: list[str] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    parent: Route | None = None
    idx: int = 0

    def key(self) -> str:
        """Alertmanager's route key: parent keys and this node's matchers, ``{}/{env="prod"}``."""
        own = "{" + ",".join(str(m) for m in self.matchers) + "}"
        return own if self.parent is None else f"{self.parent.key()}/{own}"

    def id(self) -> str:
        """Unique even for siblings with identical matchers (key plus position)."""
        own = "{" + ",".join(str(m) for m in self.matchers) + "}"
        return own if self.parent is None else f"{self.parent.id()}/{own}/{self.idx}"

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """All routes an alert with ``labels`` goes to (the root matches everything)."""
        if not matches_all(self.matchers, labels):
            return []
        out: list[Route] = []
        for child in self.routes:
            got = child.match(labels)
            out.extend(got)
            if got and not child.continue_:
                break
        return out or [self]

    def walk(self) -> Iterable[Route]:
        yield self
        for c in self.routes:
            yield from c.walk()

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        if self.group_by_all:
            return dict(labels)
        return {k: v for k, v in labels.items() if k in self.group_by}


def build_routes(rc: RouteConfig, parent: Route | None = None, idx: int = 0) -> Route:
    """Resolve inheritance (``dispatch.NewRoute``) for a config tree."""
    if parent is None:
        r = Route(receiver=rc.receiver or "", group_by=frozenset(rc.group_by or ()), group_by_all=rc.group_by_all,
                  group_wait=DEFAULT_GROUP_WAIT if rc.group_wait is None else rc.group_wait,
                  group_interval=DEFAULT_GROUP_INTERVAL if rc.group_interval is None else rc.group_interval,
                  repeat_interval=DEFAULT_REPEAT_INTERVAL if rc.repeat_interval is None else rc.repeat_interval,
                  matchers=[])
    else:
        gb, gba = parent.group_by, parent.group_by_all
        if rc.group_by is not None:
            gb, gba = frozenset(rc.group_by), rc.group_by_all
        r = Route(receiver=rc.receiver or parent.receiver, group_by=gb, group_by_all=gba,
                  group_wait=parent.group_wait if rc.group_wait is None else rc.group_wait,
                  group_interval=parent.group_interval if rc.group_interval is None else rc.group_interval,
                  repeat_interval=parent.repeat_interval if rc.repeat_interval is None else rc.repeat_interval,
                  matchers=sorted(rc.matchers, key=lambda m: (m.name, m.type.value, m.value)),
                  continue_=rc.continue_, parent=parent, idx=idx)
    r.mute_time_intervals = list(rc.mute_time_intervals)
    r.active_time_intervals = list(rc.active_time_intervals)
    r.routes = [build_routes(c, r, i) for i, c in enumerate(rc.routes)]
    return r


def _labels_str(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{labels[k]}"' for k in sorted(labels)) + "}"


@dataclass(eq=False)
class AggrGroup:
    route: Route
    labels: dict[str, str]
    group_key: str
    next_flush: float
    alerts: dict[str, Alert] = field(default_factory=dict)
    has_flushed: bool = False
    flushing: asyncio.Task[None] | None = None


@dataclass(slots=True)
class _NflogEntry:
    firing: frozenset[str]
    resolved: frozenset[str]
    timestamp: float


class Dispatcher:
    """Owns the alert store, the aggregation groups and the notification log."""

    def __init__(self, cfg: AlertmanagerConfig, silences: Silences, receivers: ReceiverSet, *,
                 external_url: str = "", clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.silences = silences
        self.external_url = external_url.rstrip("/")
        self.alerts: dict[str, Alert] = {}
        self.groups: dict[tuple[str, tuple[tuple[str, str], ...]], AggrGroup] = {}
        self.nflog: dict[tuple[str, str, str], _NflogEntry] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._wake: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None
        self._apply_config(cfg, receivers)

    # ---- config -----------------------------------------------------------------------------

    def _apply_config(self, cfg: AlertmanagerConfig, receivers: ReceiverSet) -> None:
        self.cfg = cfg
        self.receivers = receivers
        self.route = build_routes(cfg.route)
        self.inhibitor = Inhibitor(cfg.inhibit_rules)
        self.resolve_timeout = cfg.global_.resolve_timeout

    def reload(self, cfg: AlertmanagerConfig, receivers: ReceiverSet) -> None:
        """Swap config: rebuild routes and groups from the stored alerts. The notification log is
        kept, so groups that still exist do not notify again (Alertmanager does the same)."""
        for g in self.groups.values():
            if g.flushing is not None:
                g.flushing.cancel()
        self.groups.clear()
        self._apply_config(cfg, receivers)
        now = self.clock()
        for a in self.alerts.values():
            self.inhibitor.observe(a)
        for a in list(self.alerts.values()):
            if not a.resolved(now):
                self._route_alert(a, now)
        self._kick()

    # ---- ingest -----------------------------------------------------------------------------

    def put(self, alerts: Iterable[Alert]) -> None:
        """Accept alerts without blocking; safe to call from any thread."""
        batch = list(alerts)
        loop = self._loop
        if loop is not None and self._loop_thread is not None and threading.get_ident() != self._loop_thread:
            loop.call_soon_threadsafe(self._ingest, batch)
        else:
            self._ingest(batch)

    def _ingest(self, batch: list[Alert]) -> None:
        now = self.clock()
        for a in batch:
            a = replace(a, labels=dict(a.labels), annotations=dict(a.annotations))
            if not a.starts_at:
                a.starts_at = a.ends_at if a.ends_at else now
            if not a.ends_at:
                a.ends_at = now + self.resolve_timeout  # resolves itself if the sender goes quiet
            a.updated_at = now
            fp = a.fingerprint
            old = self.alerts.get(fp)
            if old is not None and _overlaps(old, a):
                a = _merge(old, a)
            self.alerts[fp] = a
            self.inhibitor.observe(a)
            self._route_alert(a, now)
        self._kick()

    def _route_alert(self, a: Alert, now: float) -> None:
        for r in self.route.match(a.labels):
            gl = r.group_labels(a.labels)
            gk = (r.id(), tuple(sorted(gl.items())))
            g = self.groups.get(gk)
            if g is None:
                if a.resolved(now):
                    continue  # a resolved alert never opens a group; nothing to tell anyone
                g = AggrGroup(route=r, labels=gl, group_key=f"{r.key()}:{_labels_str(gl)}",
                              next_flush=now + r.group_wait)
                self.groups[gk] = g
            g.alerts[a.fingerprint] = a
            if not g.has_flushed and a.starts_at + r.group_wait < now:
                g.next_flush = min(g.next_flush, now)

    # ---- status for the API -----------------------------------------------------------------

    def receivers_for(self, labels: Mapping[str, str]) -> list[str]:
        out: list[str] = []
        for r in self.route.match(labels):
            if r.receiver not in out:
                out.append(r.receiver)
        return out

    def status(self, a: Alert, now: float | None = None) -> dict[str, object]:
        t = self.clock() if now is None else now
        silenced = self.silences.mutes(a.labels, t)
        inhibited = self.inhibitor.mutes(a.labels, t)
        state = "suppressed" if silenced or inhibited else "active"
        return {"state": state, "silencedBy": silenced, "inhibitedBy": inhibited}

    def active_alerts(self) -> list[Alert]:
        now = self.clock()
        return [a for a in self.alerts.values() if not a.resolved(now)]

    # ---- flushing ---------------------------------------------------------------------------

    def next_due(self) -> float | None:
        due = [g.next_flush for g in self.groups.values()]
        return min(due) if due else None

    def run_due(self) -> int:
        """Flush every group whose timer has expired; returns how many flushes started."""
        now = self.clock()
        n = 0
        for g in list(self.groups.values()):
            if g.next_flush <= now and (g.flushing is None or g.flushing.done()):
                g.has_flushed = True
                g.next_flush = now + g.route.group_interval
                g.flushing = self._spawn(self._flush(g, now))
                n += 1
        return n

    def _spawn(self, coro) -> asyncio.Task[None]:  # type: ignore[no-untyped-def]
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    async def drain(self) -> None:
        """Wait for every in-flight flush (tests; graceful shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _flush(self, g: AggrGroup, now: float) -> None:
        snapshot = dict(g.alerts)
        ok = True
        try:
            ok = await self._notify(g, snapshot, now)
        except Exception:
            log.exception("flush of group %s failed", g.group_key)
            ok = False
        if ok:
            # Drop alerts that were resolved when sent and have not changed since.
            for fp, a in snapshot.items():
                if a.resolved(now) and g.alerts.get(fp) is a:
                    del g.alerts[fp]
        if not g.alerts:
            for k, v in list(self.groups.items()):
                if v is g:
                    del self.groups[k]
        self._gc(now)

    async def _notify(self, g: AggrGroup, alerts: Mapping[str, Alert], now: float) -> bool:
        r = g.route
        # Inhibition, then time intervals (for the whole flush), then silences.
        kept = [a for a in alerts.values() if not self.inhibitor.mutes(a.labels, now)]
        if not kept:
            return True
        if r.active_time_intervals and not any(
                in_any(self.cfg.time_intervals.get(n, []), now) for n in r.active_time_intervals):
            return True
        if any(in_any(self.cfg.time_intervals.get(n, []), now) for n in r.mute_time_intervals):
            return True
        kept = [a for a in kept if not self.silences.mutes(a.labels, now)]
        if not kept:
            return True
        # Alertmanager's AlertSlice order: by job, then instance, then the whole sorted label set.
        kept.sort(key=lambda a: (a.labels.get("job", ""), a.labels.get("instance", ""), sorted(a.labels.items())))
        firing = frozenset(a.fingerprint for a in kept if not a.resolved(now))
        resolved = frozenset(a.fingerprint for a in kept if a.resolved(now))
        # Firing alerts are sent without an end time: it would only be a guess of the sender's.
        sendable = [a if a.resolved(now) else replace(a, ends_at=0.0) for a in kept]

        jobs = []
        for integ in self.receivers.integrations(r.receiver):
            key = (g.group_key, r.receiver, integ.name)
            entry = self.nflog.get(key)
            if not _needs_update(entry, firing, resolved, r.repeat_interval, integ.send_resolved, now):
                continue
            to_send = sendable if integ.send_resolved else [a for a in sendable if not a.resolved(now)]
            if not to_send:
                # Only resolved alerts and send_resolved is off: log them as notified, send nothing.
                self.nflog[key] = _NflogEntry(firing, resolved, now)
                continue
            n = Notification(receiver=r.receiver, group_key=g.group_key, group_labels=dict(g.labels),
                             alerts=to_send, external_url=self.external_url, now=now)
            jobs.append((key, integ, n))
        if not jobs:
            return True

        async def one(key, integ, n) -> bool:  # type: ignore[no-untyped-def]
            sent = await self.receivers.deliver(integ, n, timeout=r.group_interval)
            if sent:
                self.nflog[key] = _NflogEntry(firing, resolved, now)
            return sent

        results = await asyncio.gather(*(one(*j) for j in jobs))
        return all(results)

    def _gc(self, now: float) -> None:
        """Forget resolved alerts no group holds any more (Alertmanager's alert GC)."""
        held = {fp for g in self.groups.values() for fp in g.alerts}
        dead = [fp for fp, a in self.alerts.items() if a.resolved(now) and fp not in held]
        for fp in dead:
            del self.alerts[fp]
        if dead:
            self.inhibitor.forget(dead)

    # ---- background loop --------------------------------------------------------------------

    def _kick(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._wake = asyncio.Event()
        self._runner = self._loop.create_task(self._run())

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
            self._runner = None
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self._loop = None
        self._loop_thread = None

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            try:
                self.run_due()
                self._gc(self.clock())
            except Exception:
                log.exception("dispatcher loop error")
            nd = self.next_due()
            delay = 1.0 if nd is None else min(max(nd - self.clock(), 0.01), 1.0)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)


def _overlaps(old: Alert, new: Alert) -> bool:
    """Alertmanager merges a re-sent alert into the stored one only if their activity overlaps."""
    return (old.starts_at < new.ends_at <= old.ends_at) or (old.starts_at <= new.starts_at < old.ends_at) or (
        new.starts_at <= old.starts_at and new.ends_at >= old.ends_at)


def _merge(old: Alert, new: Alert) -> Alert:
    """``types.Alert.Merge``: newest wins, earliest start kept, latest explicit resolution kept."""
    res = replace(new)
    res.starts_at = min(old.starts_at, new.starts_at)
    now = new.updated_at
    if new.resolved(now):
        if old.resolved(now) and old.ends_at > new.ends_at:
            res.ends_at = old.ends_at
    return res


def _needs_update(entry: _NflogEntry | None, firing: frozenset[str], resolved: frozenset[str], repeat: float,
                  send_resolved: bool, now: float) -> bool:
    """Alertmanager's ``DedupStage.needsUpdate``."""
    if entry is None:
        return bool(firing)
    if not firing <= entry.firing:
        return True
    if not firing:
        return bool(entry.firing)
    if send_resolved and not resolved <= entry.resolved:
        return True
    return entry.timestamp <= now - repeat
