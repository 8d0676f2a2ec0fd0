"""Deterministic, realistic Prometheus series and a remote-write sender.

A dataset is a set of scrape *targets* (``job``, ``instance``); every target exposes the same
families, like a fleet of identical services:

====================================  =========  ===============================================
family                                type       labels (besides job, instance)
====================================  =========  ===============================================
http_requests_total                   counter    handler x method x status (18), varying rates
errors_total                          counter    (rare increments, long flat stretches)
process_cpu_seconds_total             counter    fractional increments
memory_usage_bytes                    gauge      type = heap | rss | cache (random walks)
temperature_celsius                   gauge      sensor = 0 | 1 (crosses zero: negative values)
queue_length                          gauge      integer values
cache_hit_ratio                       gauge      ~2 % of the samples are NaN
build_info                            gauge      version (constant 1; for group_left joins)
http_request_duration_seconds         histogram  handler (3) x classic le buckets + _sum, _count
intermittent_metric                   gauge      appears and disappears (stale markers)
====================================  =========  ===============================================

= 70 series per target. Targets restart now and then: during the outage every series of the
target gets a stale marker at the first missed scrape and no samples after it; afterwards its
counters start again from 0 (counter resets). About 0.5 % of the scrapes are simply missing
(short gaps, no stale marker).

A counter reads exactly 0 at the first scrape of the target and at the first scrape after every
restart (as if the exporter exposed its counters before the first increment, or Prometheus'
created-timestamp zero injection), and the first ``SETTLING_SCRAPES`` scrapes of every run are
never missing. Together they keep ``rate``/``increase`` out of the one place where Prometheus
2.51 changed them (prometheus/prometheus#13725): when a window starts inside a gap (more than 1.1
average intervals before its first sample), 2.51+ first shortens the extrapolation to half an
interval and then to the extrapolated zero point, older versions in the other order — they differ
when the zero point falls between half an interval and 1.1 intervals before the first sample,
which needs a gap while the counter is young (its value still below about one interval's
increase). A gap in the second scrape of a run did exactly that (a CI run at T0=1795558620 s).
tests/metrics/test_prometheus_differential.py checks the property on its dataset and on a day of
other start times.

Sample timestamps are ``start + k * interval + offset`` with a per-target offset whose millisecond
part is never 0 (and a few ms of jitter; all series of a target share their scrape timestamps),
so no sample ever lies on a whole second: results do not depend on whether range boundaries are
closed (Prometheus 2) or left-open (Prometheus 3) as long as queries are evaluated at whole
seconds.

Everything is a function of ``(seed, target index)`` only, so a target's data does not change
with the size of the dataset. ``generate()`` returns ``[(labels, t_ms int64, v float64), ...]``.

The sender: ``send_remote_write(url, series, ...)`` encodes with
:func:`lookout.metrics.remote_write.encode_write_request` and POSTs time slice after time slice
(all series of a slice, then the next slice), so every series arrives in time order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from lookout.metrics.model import STALE_NAN

JOBS = ["api", "api", "web", "db", "cache"]
HANDLERS = ["/api/users", "/api/orders", "/api/search"]
METHODS = ["GET", "POST"]
STATUSES = ["200", "404", "500"]
BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
VERSIONS = ["1.4.2", "1.5.0", "2.0.1"]
SERIES_PER_TARGET = 70
DAY_MS = 86_400_000
SETTLING_SCRAPES = 20  # the first scrapes of every counter run are never missing (see above)

# family name -> (type, help); histogram families are named without the _bucket/_sum/_count suffix
FAMILIES: dict[str, tuple[str, str]] = {
    "http_requests_total": ("counter", "HTTP requests handled."),
    "errors_total": ("counter", "Internal errors."),
    "process_cpu_seconds_total": ("counter", "CPU time consumed."),
    "memory_usage_bytes": ("gauge", "Memory in use by type."),
    "temperature_celsius": ("gauge", "Sensor temperature."),
    "queue_length": ("gauge", "Jobs waiting."),
    "cache_hit_ratio": ("gauge", "Cache hit ratio (NaN when idle)."),
    "build_info": ("gauge", "Build information."),
    "http_request_duration_seconds": ("histogram", "HTTP request latency."),
    "intermittent_metric": ("gauge", "A metric that comes and goes."),
}


def family_of(name: str) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in FAMILIES:
            return name[: -len(suffix)]
    return name


@dataclass(frozen=True)
class Target:
    index: int
    job: str
    instance: str


def targets(n_series: int) -> list[Target]:
    n = max(1, math.ceil(n_series / SERIES_PER_TARGET))
    return [Target(i, JOBS[i % len(JOBS)], f"host-{i:05d}:9100") for i in range(n)]


Series = tuple[dict[str, str], np.ndarray, np.ndarray]


class _TargetGen:
    """All series of one target over [start_ms, end_ms)."""

    def __init__(self, target: Target, start_ms: int, end_ms: int, interval_ms: int, seed: int,
                 restarts_per_day: float, gap_ratio: float) -> None:
        self.target = target
        self.rng = np.random.default_rng([seed, target.index])
        self.interval = interval_ms
        self.start = start_ms
        self.gap_ratio = gap_ratio
        steps = max(0, (end_ms - start_ms) // interval_ms)
        self.steps = steps
        self.grid = start_ms + np.arange(steps, dtype=np.int64) * interval_ms
        rng = self.rng
        # outages: [down_from, down_to) step indexes; stale marker at down_from
        self.up = np.ones(steps, dtype=bool)
        self.epoch = np.zeros(steps, dtype=np.int64)  # counts restarts so far (counter resets)
        n_restarts = rng.poisson(restarts_per_day * (end_ms - start_ms) / DAY_MS) if steps else 0
        self.outages: list[tuple[int, int]] = []
        for s in sorted(rng.integers(1, max(2, steps - 1), size=n_restarts)):
            length = int(rng.integers(1, max(2, 600_000 // interval_ms)))  # up to 10 minutes down
            self.outages.append((int(s), min(steps, int(s) + length)))
            self.up[s:s + length] = False
            self.epoch[min(steps, int(s) + length):] += 1
        self.restarted = np.diff(self.epoch, prepend=0) > 0  # first scrape after an outage
        self.starts = self.restarted.copy()  # first scrape of every counter run: counters read 0 there
        if steps:
            self.starts[0] = True
        idx = np.arange(steps)
        run_start = np.maximum.accumulate(np.where(self.starts, idx, 0)) if steps else idx
        self.settling = idx - run_start < SETTLING_SCRAPES  # young counter runs: no random gaps
        self.out: list[Series] = []
        self.times = self._times()  # one scrape yields every series of the target: shared timestamps

    def _times(self) -> np.ndarray:
        rng = self.rng
        offset = int(rng.integers(0, max(1, self.interval // 1000))) * 1000 + int(rng.integers(10, 990))
        jitter = rng.integers(-5, 6, size=self.steps)
        return self.grid + offset + jitter

    def emit(self, name: str, labels: dict[str, str], values: np.ndarray, present: np.ndarray | None = None,
             times: np.ndarray | None = None) -> None:
        """Keep the samples where the target is up (and ``present``), minus random gaps; a stale
        marker replaces the first missing scrape of every outage / absence."""
        rng = self.rng
        t = self.times if times is None else times
        mask = self.up.copy() if present is None else (self.up & present)
        gaps = rng.random(self.steps) < self.gap_ratio
        keep = mask & ~(gaps & ~self.settling)  # the first scrapes of a run are never missing
        # stale marker where the series was exposed at the previous scrape and is not exposed now
        stale = np.zeros(self.steps, dtype=bool)
        stale[1:] = mask[:-1] & ~mask[1:]
        v = np.where(stale, STALE_NAN, values)
        sel = keep | stale
        full = {"__name__": name, "job": self.target.job, "instance": self.target.instance, **labels}
        self.out.append((full, t[sel].astype(np.int64), v[sel].astype(np.float64)))

    def counter(self, increments: np.ndarray) -> np.ndarray:
        """Cumulative sum that reads 0 at the first scrape and again at the first scrape after
        every outage (a counter reset)."""
        inc = np.where(self.up & ~self.starts, increments, 0.0).astype(np.float64)
        total = np.cumsum(inc)
        if self.restarted.any():
            base = np.zeros(self.steps)
            idx = np.flatnonzero(self.restarted)
            base[idx] = total[idx - 1] if len(idx) else 0
            total = total - np.maximum.accumulate(base)
        return total

    def daily(self, phase: float, amplitude: float = 0.5) -> np.ndarray:
        return 1 + amplitude * np.sin(2 * np.pi * self.grid / DAY_MS + phase)

    def build(self) -> list[Series]:
        rng = self.rng
        steps = self.steps
        if steps == 0:
            return []
        dt = self.interval / 1000
        phase = float(rng.uniform(0, 2 * np.pi))
        load = self.daily(phase)
        for handler in HANDLERS:
            for method in METHODS:
                base = float(rng.lognormal(1.0, 1.2)) * (0.3 if method == "POST" else 1.0)
                for status, share in zip(STATUSES, (0.9, 0.08, 0.02), strict=True):
                    inc = rng.poisson(base * share * dt * load).astype(np.float64)
                    self.emit("http_requests_total", {"handler": handler, "method": method, "status": status},
                              self.counter(inc))
        self.emit("errors_total", {}, self.counter((rng.random(steps) < 0.01).astype(np.float64)))
        cpu = rng.gamma(2.0, 0.05 * dt, size=steps) * load
        self.emit("process_cpu_seconds_total", {}, self.counter(cpu))
        for kind, level in (("heap", 2e8), ("rss", 5e8), ("cache", 1e8)):
            walk = level * np.exp(np.cumsum(rng.normal(0, 0.01, size=steps)))
            walk = np.where(self.epoch % 2 == 1, walk * 0.6, walk)  # restarts change the level
            self.emit("memory_usage_bytes", {"type": kind}, np.round(walk))
        for sensor in ("0", "1"):
            temp = -5 + 20 * np.sin(2 * np.pi * self.grid / (3 * 3_600_000) + rng.uniform(0, 6.3))
            self.emit("temperature_celsius", {"sensor": sensor}, np.round(temp + rng.normal(0, 0.5, steps), 2))
        self.emit("queue_length", {}, rng.poisson(5 * load).astype(np.float64))
        ratio = np.clip(rng.normal(0.8, 0.1, steps), 0, 1)
        self.emit("cache_hit_ratio", {}, np.where(rng.random(steps) < 0.02, np.nan, ratio))
        self.emit("build_info", {"version": VERSIONS[self.target.index % len(VERSIONS)]}, np.ones(steps))
        # classic histogram: per-scrape request counts spread over the buckets by a lognormal latency
        edges = np.array(BUCKETS + [np.inf])
        for handler in HANDLERS:
            mu, sigma = float(rng.normal(-2.5, 0.7)), float(rng.uniform(0.5, 1.2))
            cdf = 0.5 * (1 + np.vectorize(math.erf)((np.log(np.array(BUCKETS)) - mu) / (sigma * math.sqrt(2))))
            probs = np.diff(np.concatenate([[0.0], cdf, [1.0]]))
            n = rng.poisson(float(rng.lognormal(1.5, 0.8)) * dt * load)
            per_bucket = rng.multinomial(n, probs)  # (steps, len(edges))
            cum = np.cumsum(per_bucket, axis=1).astype(np.float64)
            times = self.times
            for j, le in enumerate(edges):
                self.emit("http_request_duration_seconds_bucket",
                          {"handler": handler, "le": _fmt_le(le)}, self.counter(cum[:, j]), times=times)
            total_lat = n * np.exp(mu + sigma**2 / 2) * rng.uniform(0.8, 1.2, steps)
            self.emit("http_request_duration_seconds_sum", {"handler": handler}, self.counter(total_lat),
                      times=times)
            self.emit("http_request_duration_seconds_count", {"handler": handler}, self.counter(n.astype(float)),
                      times=times)
        # intermittent: on for 5-40 minutes, off for 5-40 minutes
        present = np.zeros(steps, dtype=bool)
        i = int(rng.integers(0, max(1, 1_200_000 // self.interval)))
        on = bool(rng.integers(0, 2))
        while i < steps:
            length = int(rng.integers(300_000, 2_400_000) // self.interval) + 1
            present[i:i + length] = on
            i += length
            on = not on
        self.emit("intermittent_metric", {}, rng.normal(100, 10, steps).round(1), present=present)
        return self.out


def _fmt_le(le: float) -> str:
    if np.isinf(le):
        return "+Inf"
    return f"{le:g}"  # as Go's client_golang writes it: 0.005, 0.1, 1, 2.5, 10


def generate_target(target: Target, start_ms: int, end_ms: int, interval_ms: int = 15_000, seed: int = 1,
                    restarts_per_day: float = 2.0, gap_ratio: float = 0.005) -> list[Series]:
    return _TargetGen(target, start_ms, end_ms, interval_ms, seed, restarts_per_day, gap_ratio).build()


def generate(n_series: int, start_ms: int, end_ms: int, interval_ms: int = 15_000, seed: int = 1,
             restarts_per_day: float = 2.0, gap_ratio: float = 0.005) -> list[Series]:
    """About ``n_series`` series (rounded up to whole targets of 70) over [start_ms, end_ms)."""
    out: list[Series] = []
    for tg in targets(n_series):
        out += generate_target(tg, start_ms, end_ms, interval_ms, seed, restarts_per_day, gap_ratio)
    return out


def iter_generate(n_series: int, start_ms: int, end_ms: int, interval_ms: int = 15_000, seed: int = 1,
                  targets_per_batch: int = 10, **kw) -> Iterator[list[Series]]:
    """Like :func:`generate`, a few targets at a time (bounded memory for big datasets)."""
    tgs = targets(n_series)
    for i in range(0, len(tgs), targets_per_batch):
        batch: list[Series] = []
        for tg in tgs[i:i + targets_per_batch]:
            batch += generate_target(tg, start_ms, end_ms, interval_ms, seed, **kw)
        yield batch


def num_samples(series: list[Series]) -> int:
    return sum(len(t) for _, t, _ in series)


def time_slices(series: list[Series], start_ms: int, end_ms: int, slice_ms: int) -> Iterator[list[Series]]:
    """The samples of every series in [a, a + slice_ms), slice after slice (series without samples
    in a slice are left out)."""
    a = start_ms - (start_ms % slice_ms)
    bounds = [(np.searchsorted(t, a), t) for _, t, _ in series]
    while a < end_ms + slice_ms:
        b = a + slice_ms
        chunk = []
        for i, (labels, t, v) in enumerate(series):
            lo = bounds[i][0]
            hi = int(np.searchsorted(t, b))
            if hi > lo:
                chunk.append((labels, t[lo:hi], v[lo:hi]))
            bounds[i] = (hi, t)
        if chunk:
            yield chunk
        a = b


def chunk_requests(slice_series: list[Series], max_samples: int) -> Iterator[list[Series]]:
    """Split one time slice into requests of at most ~``max_samples`` samples (whole series)."""
    req: list[Series] = []
    n = 0
    for s in slice_series:
        if req and n + len(s[1]) > max_samples:
            yield req
            req, n = [], 0
        req.append(s)
        n += len(s[1])
    if req:
        yield req


def encoder():
    """``encode_write_request`` from Lookout (snappy-compressed prometheus.WriteRequest bytes)."""
    from lookout.metrics.remote_write import encode_write_request

    return encode_write_request


REMOTE_WRITE_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    "User-Agent": "lookout-promgen/1",
}


def encoded_requests(series: list[Series], slice_ms: int = 600_000, max_samples: int = 10_000) -> Iterator[
        tuple[bytes, int]]:
    """(body, samples) for every remote-write request, time slice after time slice."""
    encode = encoder()
    if not series:
        return
    start = min(int(t[0]) for _, t, _ in series if len(t))
    end = max(int(t[-1]) for _, t, _ in series if len(t))
    for sl in time_slices(series, start, end, slice_ms):
        for req in chunk_requests(sl, max_samples):
            yield encode(req), sum(len(t) for _, t, _ in req)


def send_remote_write(url: str, series: list[Series], slice_ms: int = 600_000, max_samples: int = 10_000,
                      client=None, timeout: float = 60.0) -> int:
    """POST ``series`` to a remote-write endpoint in time order; returns the samples sent.
    Raises RuntimeError with the receiver's answer on any non-2xx response."""
    import httpx

    own = client is None
    client = client or httpx.Client(timeout=timeout)
    sent = 0
    try:
        for body, n in encoded_requests(series, slice_ms, max_samples):
            r = client.post(url, content=body, headers=REMOTE_WRITE_HEADERS)
            if not 200 <= r.status_code < 300:
                raise RuntimeError(f"remote write to {url} failed: {r.status_code} {r.text[:500]}")
            sent += n
    finally:
        if own:
            client.close()
    return sent
