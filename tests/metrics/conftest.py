"""Fixtures for the metrics tests: a real Prometheus as the reference engine.

``prometheus`` starts a fresh reference Prometheus (remote-write receiver on, no scrape jobs) in a
temp dir; ``prometheus_factory(**kwargs)`` starts one with :class:`PrometheusRef` options (e.g.
``scrape_self=True, remote_write_url=...`` to make it a sender). Both skip only when the
``prometheus`` binary is not installed (CI installs the Debian package ``prometheus``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/ (prometheus_ref)

from prometheus_ref import SKIP_REASON, PrometheusRef, prometheus_available  # noqa: E402


def require_prometheus() -> None:
    if not prometheus_available():
        pytest.skip(SKIP_REASON)


@pytest.fixture
def prometheus_factory(tmp_path):
    require_prometheus()
    started: list[PrometheusRef] = []

    def make(**kwargs) -> PrometheusRef:
        p = PrometheusRef(tmp_path / f"prometheus{len(started)}", **kwargs)
        started.append(p)
        return p.start()

    yield make
    for p in started:
        p.stop()


@pytest.fixture
def prometheus(prometheus_factory) -> PrometheusRef:
    return prometheus_factory()
