"""A real Prometheus (Debian package ``prometheus``, ``/usr/bin/prometheus``) as a reference engine.

Used by the differential PromQL tests (tests/metrics/) and by bench/bench_metrics.py. It runs
Prometheus in its own temp dir on 127.0.0.1 with port 0 and reads the port it actually bound from
``/proc/<pid>/net/tcp`` (no free-port race); the remote-write receiver is on, the admin API is on
(for TSDB snapshots), and out-of-order ingestion is allowed so that history can be loaded by
remote write.

    with PrometheusRef(tmp_path / "prom") as prom:
        prom.url                                    # http://127.0.0.1:<port>
        prom.remote_write_url                       # .../api/v1/write
        prom.query("up", time=...)                  # the "data" object of /api/v1/query

Optional: ``scrape_self=True`` (the job ``prometheus`` scraping its own /metrics),
``static_targets=["127.0.0.1:1234"]`` (+ ``metrics_path``), ``remote_write_url=...`` to make it a
remote-write *sender* into another system (short batch deadline, so samples leave within ~1 s).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

PROMETHEUS_BIN = os.environ.get("LOOKOUT_PROMETHEUS_BIN", "/usr/bin/prometheus")
# Prometheus 2.x needs this to accept samples older than the head's window (loading history);
# remote-written history arrives in time order per series anyway, this is the safety net.
DEFAULT_OOO_WINDOW = "30d"
SKIP_REASON = (f"real Prometheus not installed: {PROMETHEUS_BIN} is missing "
               "(apt-get install -y --no-install-recommends prometheus)")


def prometheus_available() -> bool:
    return os.access(PROMETHEUS_BIN, os.X_OK)


def binary_version() -> tuple[int, ...]:
    """(major, minor, patch) of the installed binary, from ``prometheus --version``."""
    out = subprocess.run([PROMETHEUS_BIN, "--version"], capture_output=True, text=True, timeout=30)
    words = (out.stdout + out.stderr).split()
    raw = words[words.index("version") + 1] if "version" in words else "0"
    return tuple(int(x) for x in raw.split("+")[0].split("-")[0].split(".") if x.isdigit())


def experimental_promql_args() -> list[str]:
    """Flags that enable Prometheus' experimental PromQL functions (limitk, sort_by_label, ...)
    where the installed version has them (2.49+); nothing for older versions."""
    return ["--enable-feature=promql-experimental-functions"] if binary_version() >= (2, 49) else []


def _listening_ports(pid: int) -> list[int]:
    """TCP ports in LISTEN state owned by ``pid`` (via its socket fds and /proc/<pid>/net/tcp*)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return []
    ports = []
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 9 and cols[3] == "0A" and cols[9] in inodes:
                ports.append(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrometheusRef:
    def __init__(self, work_dir: Path, *, scrape_interval: str = "1s", scrape_self: bool = False,
                 static_targets: list[str] | None = None, metrics_path: str = "/metrics",
                 remote_write_url: str | None = None, ooo_window: str | None = DEFAULT_OOO_WINDOW,
                 retention: str = "365d", extra_args: list[str] | None = None,
                 external_labels: dict[str, str] | None = None) -> None:
        self.work_dir = Path(work_dir)
        self.data_dir = self.work_dir / "tsdb"
        self.config_path = self.work_dir / "prometheus.yml"
        self.log_path = self.work_dir / "prometheus.log"
        self.scrape_interval = scrape_interval
        self.scrape_self = scrape_self
        self.static_targets = list(static_targets or [])
        self.metrics_path = metrics_path
        self.remote_write_target = remote_write_url
        self.ooo_window = ooo_window
        self.retention = retention
        self.extra_args = list(extra_args or [])
        self.external_labels = external_labels or {}
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self._client: httpx.Client | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "global": {"scrape_interval": self.scrape_interval, "scrape_timeout": self.scrape_interval,
                       "evaluation_interval": self.scrape_interval},
            "scrape_configs": [],
        }
        if self.external_labels:
            cfg["global"]["external_labels"] = dict(self.external_labels)
        if self.ooo_window:
            cfg["storage"] = {"tsdb": {"out_of_order_time_window": self.ooo_window}}
        if self.scrape_self and self.port:
            cfg["scrape_configs"].append({"job_name": "prometheus",
                                          "static_configs": [{"targets": [f"127.0.0.1:{self.port}"]}]})
        if self.static_targets:
            cfg["scrape_configs"].append({"job_name": "static", "metrics_path": self.metrics_path,
                                          "static_configs": [{"targets": self.static_targets}]})
        if self.remote_write_target:
            cfg["remote_write"] = [{
                "url": self.remote_write_target,
                "remote_timeout": "10s",
                "queue_config": {"batch_send_deadline": "500ms", "min_backoff": "50ms", "max_backoff": "1s",
                                 "max_samples_per_send": 2000, "capacity": 10000, "max_shards": 4},
                "metadata_config": {"send": True, "send_interval": "5s"},
            }]
        return cfg

    def _write_config(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))

    def start(self, timeout: float = 60.0) -> PrometheusRef:
        if not prometheus_available():
            raise RuntimeError(f"{PROMETHEUS_BIN} not found: apt-get install -y prometheus")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        use_proc = Path("/proc/self/net/tcp").exists()
        listen = "127.0.0.1:0" if use_proc else f"127.0.0.1:{_free_port()}"
        args = [PROMETHEUS_BIN, f"--config.file={self.config_path}", f"--web.listen-address={listen}",
                f"--storage.tsdb.path={self.data_dir}", f"--storage.tsdb.retention.time={self.retention}",
                "--web.enable-remote-write-receiver", "--web.enable-admin-api", "--web.enable-lifecycle",
                "--log.level=info",
                *self.extra_args]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.work_dir,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while self.port is None:
            if not use_proc:
                self.port = int(listen.rsplit(":", 1)[1])
                break
            ports = _listening_ports(self.proc.pid)
            if ports:
                self.port = ports[0]
                break
            self._check_alive(deadline)
            time.sleep(0.02)
        self._client = httpx.Client(base_url=self.url, timeout=120)
        while True:
            try:
                if self._client.get("/-/ready").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            self._check_alive(deadline)
            time.sleep(0.05)
        if self.scrape_self:  # the config needed our own port: rewrite it and reload
            self._write_config()
            r = self._client.post("/-/reload")
            if r.status_code != 200:
                raise RuntimeError(f"prometheus config reload failed: {r.status_code} {r.text}\n{self.log()}")
        return self

    def _check_alive(self, deadline: float) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with {self.proc.returncode}:\n{self.log()}")
        if time.monotonic() > deadline:
            self.stop()
            raise RuntimeError(f"prometheus did not become ready:\n{self.log()}")

    def stop(self, timeout: float = 30.0) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if hasattr(self, "_log"):
            self._log.close()

    def __enter__(self) -> PrometheusRef:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-20000:] if self.log_path.exists() else ""

    # -- addresses -------------------------------------------------------------------------------

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def remote_write_url(self) -> str:
        return f"{self.url}/api/v1/write"

    @property
    def client(self) -> httpx.Client:
        assert self._client is not None, "prometheus not started"
        return self._client

    # -- API helpers ----------------------------------------------------------------------------

    def api(self, path: str, **params: Any) -> Any:
        """GET /api/v1/<path>; returns ``data`` or raises with Prometheus' error text."""
        r = self.client.get(f"/api/v1/{path}", params={k: v for k, v in params.items() if v is not None})
        body = r.json()
        if r.status_code != 200 or body.get("status") != "success":
            raise RuntimeError(f"prometheus /api/v1/{path} {params}: {r.status_code} {body}")
        return body["data"]

    def query(self, expr: str, time: float | None = None) -> dict:
        return self.api("query", query=expr, time=time)

    def query_range(self, expr: str, start: float, end: float, step: float) -> dict:
        return self.api("query_range", query=expr, start=start, end=end, step=step)

    def version(self) -> str:
        return self.api("status/buildinfo")["version"]

    def version_tuple(self) -> tuple[int, ...]:
        head = self.version().split("+")[0].split("-")[0]
        return tuple(int(x) for x in head.split(".") if x.isdigit())

    def metric(self, name: str) -> float:
        """Sum of a self-monitoring metric from Prometheus' own /metrics."""
        total = 0.0
        for line in self.client.get("/metrics").text.splitlines():
            if line.startswith(name) and not line.startswith("#") and line[len(name)] in " {":
                total += float(line.rsplit(" ", 1)[1])
        return total

    def snapshot(self, skip_head: bool = False) -> Path:
        """POST /api/v1/admin/tsdb/snapshot: every sample (head included unless ``skip_head``)
        written as compacted, immutable blocks under tsdb/snapshots/<name>. Returns the dir."""
        r = self.client.post("/api/v1/admin/tsdb/snapshot", params={"skip_head": str(skip_head).lower()},
                             timeout=600)
        r.raise_for_status()
        return self.data_dir / "snapshots" / r.json()["data"]["name"]

    def clean_snapshots(self) -> None:
        shutil.rmtree(self.data_dir / "snapshots", ignore_errors=True)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
