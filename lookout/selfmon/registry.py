"""The platform's own metrics, rendered in the Prometheus text format on ``/metrics``.

Deliberately tiny: counters and gauges with labels, plus gauge callbacks that read a component's
``stats()`` at scrape time, so components keep plain integer counters and never import this.
Increments happen per request or per batch, never per row.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

Labels = tuple[tuple[str, str], ...]
Sample = tuple[str, dict[str, str], float]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt_labels(labels: Labels | dict[str, str]) -> str:
    items = labels.items() if isinstance(labels, dict) else labels
    inner = ",".join(f'{k}="{_escape(str(v))}"' for k, v in items)
    return "{" + inner + "}" if inner else ""


def _fmt_value(v: float) -> str:
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v)) if not float(v).is_integer() else str(int(v))


class Metric:
    def __init__(self, name: str, help_text: str, kind: str) -> None:
        self.name, self.help, self.kind = name, help_text, kind
        self._values: dict[Labels, float] = {}
        self._lock = threading.Lock()

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def set(self, value: float, **labels: str) -> None:
        with self._lock:
            self._values[tuple(sorted(labels.items()))] = float(value)

    def get(self, **labels: str) -> float:
        return self._values.get(tuple(sorted(labels.items())), 0.0)

    def samples(self) -> list[tuple[Labels, float]]:
        with self._lock:
            return list(self._values.items())


class Registry:
    def __init__(self) -> None:
        self._metrics: dict[str, Metric] = {}
        self._collectors: list[Callable[[], Iterable[tuple[str, str, str, list[Sample]]]]] = []

    def counter(self, name: str, help_text: str) -> Metric:
        return self._metrics.setdefault(name, Metric(name, help_text, "counter"))

    def gauge(self, name: str, help_text: str) -> Metric:
        return self._metrics.setdefault(name, Metric(name, help_text, "gauge"))

    def add_collector(self, fn: Callable[[], Iterable[tuple[str, str, str, list[Sample]]]]) -> None:
        """``fn`` yields ``(name, kind, help, [(sample_name, labels, value), ...])`` at scrape."""
        self._collectors.append(fn)

    def families(self) -> Iterable[tuple[str, str, str, list[Sample]]]:
        """Every metric family as ``(name, kind, help, [(sample_name, labels, value), ...])``."""
        for m in self._metrics.values():
            yield m.name, m.kind, m.help, [(m.name, dict(labels), value) for labels, value in sorted(m.samples())]
        for fn in self._collectors:
            yield from fn()

    def render(self) -> str:
        out: list[str] = []
        for name, kind, help_text, samples in self.families():
            out.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
            for sample_name, labels, value in samples:
                out.append(f"{sample_name}{_fmt_labels(labels)} {_fmt_value(value)}\n")
        return "".join(out)
