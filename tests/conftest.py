"""Fixtures that run the real server: ``lookout serve`` in a subprocess on port 0, in a tmp dir.

A subprocess (not a thread) so tests can ``kill -9`` it and restart it on the same data dir.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


class LookoutProcess:
    def __init__(self, data_dir: Path, config: dict | None = None) -> None:
        self.data_dir = data_dir
        self.config = config or {}
        self.proc: subprocess.Popen | None = None
        self.addr: dict = {}
        self.log_path = data_dir.parent / f"{data_dir.name}.log"

    def start(self, timeout: float = 60.0, wait_ready: bool = True) -> LookoutProcess:
        cfg = {"data_dir": str(self.data_dir),
               "listen": {"otlp_grpc": "127.0.0.1:0", "otlp_http": "127.0.0.1:0",
                          "http": "127.0.0.1:0", "health": "127.0.0.1:0"}}
        for key, value in self.config.items():
            if isinstance(value, dict):
                cfg.setdefault(key, {}).update(value)
            else:
                cfg[key] = value
        cfg_path = self.data_dir.parent / f"{self.data_dir.name}.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg))
        ready = self.data_dir / "listening.json"
        if ready.exists():
            ready.unlink()
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "lookout.cli", "serve", "--config", str(cfg_path)],
                                     stdout=self._log, stderr=subprocess.STDOUT, cwd=str(ROOT))
        deadline = time.monotonic() + timeout
        while True:
            if ready.exists():
                self.addr = json.loads(ready.read_text())
                if self.addr["ready"] or not wait_ready:
                    return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"lookout exited with {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"lookout did not become ready:\n{self.log()}")
            time.sleep(0.01)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def http(self) -> str:
        return f"http://{self.addr['http']}"

    @property
    def otlp_http(self) -> str:
        return f"http://{self.addr['otlp_http']}"

    @property
    def otlp_grpc(self) -> str:
        return self.addr["otlp_grpc"]

    @property
    def health(self) -> str:
        return f"http://{self.addr['health']}"

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def metrics(self) -> str:
        return httpx.get(f"{self.http}/metrics", timeout=10).text

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if hasattr(self, "_log"):
            self._log.close()


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


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (test helper)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if head.split("{")[0] != name:
            continue
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


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
