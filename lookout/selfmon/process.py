"""The process_* metrics every Prometheus client exports, with client_golang's names and help.

Operators' dashboards and alerts (and Lookout's own self-monitoring dashboard) expect
``process_resident_memory_bytes`` and ``process_cpu_seconds_total`` from every server they run;
Prometheus, Loki and Tempo all export them. Read from /proc at scrape time (Linux); where /proc
is missing only what ``resource`` and ``os`` can tell is exported, never a made-up 0.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterator

from lookout.selfmon.registry import Sample

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_STARTED = time.time()  # fallback start time: when this module was imported


def _boot_time() -> float | None:
    try:
        with open("/proc/stat", "rb") as f:
            for line in f:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def _proc_stat() -> list[bytes] | None:
    """Fields of /proc/self/stat after the command name (which may hold spaces), numbered so that
    field 3 of proc(5) (state) is index 0."""
    try:
        with open("/proc/self/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return raw[raw.rfind(b")") + 2:].split()


def _open_fds() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def process_samples() -> dict[str, float]:
    """Current values by metric name (only those this platform can read)."""
    out: dict[str, float] = {}
    stat = _proc_stat()
    if stat is not None and len(stat) > 21:
        # proc(5): utime 14, stime 15, starttime 22, vsize 23, rss 24 (1-based; index = n - 3)
        out["process_cpu_seconds_total"] = (int(stat[11]) + int(stat[12])) / _TICKS
        out["process_virtual_memory_bytes"] = float(int(stat[20]))
        out["process_resident_memory_bytes"] = float(int(stat[21]) * _PAGE)
        boot = _boot_time()
        if boot is not None:
            out["process_start_time_seconds"] = boot + int(stat[19]) / _TICKS
    else:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        out["process_cpu_seconds_total"] = usage.ru_utime + usage.ru_stime
    out.setdefault("process_start_time_seconds", _STARTED)
    fds = _open_fds()
    if fds is not None:
        out["process_open_fds"] = float(fds)
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY:
        out["process_max_fds"] = float(soft)
    return out


_FAMILIES = (
    ("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds."),
    ("process_open_fds", "gauge", "Number of open file descriptors."),
    ("process_max_fds", "gauge", "Maximum number of open file descriptors."),
    ("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes."),
    ("process_resident_memory_bytes", "gauge", "Resident memory size in bytes."),
    ("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds."),
)


def collect_process() -> Iterator[tuple[str, str, str, list[Sample]]]:
    """A Registry collector (``registry.add_collector(collect_process)``)."""
    values = process_samples()
    for name, kind, help_text in _FAMILIES:
        if name in values:
            yield (name, kind, help_text, [(name, {}, values[name])])
