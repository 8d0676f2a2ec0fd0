"""Run a real Lookout node in a subprocess: ``lookout serve`` on port 0 in a data dir of its own.

For tests, conformance runners and benchmarks, which all need the real server (not an in-process
app) so that they exercise its listeners, log, consumers and shutdown exactly as users do. A
subprocess, so a test can ``kill -9`` it and start it again on the same data dir.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent


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


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` (with at least ``labels``) in Prometheus text output."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, rest = head.partition("{")
        if metric != name or not all(f'{k}="{v}"' in rest for k, v in labels.items()):
            continue
        total += float(value)
    return total
