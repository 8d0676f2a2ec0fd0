"""Fixtures that run the real server: ``lookout serve`` in a subprocess on port 0, in a tmp dir.

A subprocess (not a thread) so tests can ``kill -9`` it and restart it on the same data dir.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from lookout.devserver import LookoutProcess, metric_sum

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


@pytest.fixture
def lookout_factory(tmp_path):
    started: list[LookoutProcess] = []

    def make(config: dict | None = None, data_dir: Path | None = None, wait_ready: bool = True) -> LookoutProcess:
        p = LookoutProcess(data_dir or tmp_path / f"data{len(started)}", config)
        started.append(p)
        return p.start(wait_ready=wait_ready)

    yield make
    for p in started:
        p.stop()


@pytest.fixture
def lookout(lookout_factory) -> LookoutProcess:
    return lookout_factory()


metric_value = metric_sum  # tests import it from here


def wait_for(fn, timeout: float = 20.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        result = fn()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


os.environ.setdefault("OTEL_SDK_DISABLED", "false")
