"""The promqltest runner's HTTP backend: Prometheus' scripts through a real Lookout node.

Data goes in the way a Prometheus server would send it (remote write to ``/api/v1/write``),
queries go through ``/api/v1/query`` and ``/api/v1/query_range``. Every ``clear`` starts a new
tenant, so sections never see each other's series. The scripts' samples live in 1970 and
reload series from t=0, so the node runs with an out-of-order window and retention wide enough
to hold them.

Usage: ``python conformance/promql_http.py [files...]`` (same output as run_promql.py).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lookout.devserver import LookoutProcess, metric_sum  # noqa: E402
from lookout.metrics.remote_write import encode_write_request  # noqa: E402

SERIES_PER_REQUEST = 2000
CONFIG = {
    "log_level": "warning",
    "storage": {"retention": "36500d", "flush_interval": "1h"},
    "metrics": {"out_of_order_time_window": "36500d", "max_samples_per_second": 0},
}


class HttpBackend:
    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="promql-http-")
        self.server = LookoutProcess(Path(self._tmp.name) / "data", CONFIG).start()
        self.client = httpx.Client(base_url=self.server.http, timeout=120)
        self.section = 0

    @property
    def tenant(self) -> str:
        return f"promqltest-{self.section}"

    def clear(self) -> None:
        self.section += 1

    def load(self, series: list[tuple[dict[str, str], np.ndarray, np.ndarray]]) -> None:
        # a label set loaded twice in one block: the later line replaces the earlier (FORMAT.md 3.2)
        latest = {tuple(sorted(labels.items())): (labels, t, v) for labels, t, v in series if len(t)}
        series = list(latest.values())
        for i in range(0, len(series), SERIES_PER_REQUEST):
            body = encode_write_request(series[i:i + SERIES_PER_REQUEST])
            r = self.client.post("/api/v1/write", content=body, headers={
                "Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
                "X-Prometheus-Remote-Write-Version": "0.1.0", "X-Scope-OrgID": self.tenant})
            if r.status_code != 204:
                raise RuntimeError(f"remote write refused: {r.status_code} {r.text}")
        self._wait_consumed()

    def _wait_consumed(self) -> None:
        """Acked means durable; queryable means the consumer has read it into the head."""
        deadline = time.monotonic() + 60
        while metric_sum(self.client.get("/metrics").text, "lookout_log_consumer_lag_bytes", signal="metrics") > 0:
            if time.monotonic() > deadline:
                raise RuntimeError("metrics consumer did not catch up within 60 s")
            time.sleep(0.005)

    def _get(self, path: str, params: dict[str, str]) -> dict:
        r = self.client.post(path, data=params, headers={"X-Scope-OrgID": self.tenant})
        try:
            return r.json()
        except ValueError:
            return {"status": "error", "errorType": "internal", "error": f"HTTP {r.status_code}: {r.text[:300]}"}

    def instant(self, query: str, t_ms: int) -> dict:
        return self._get("/api/v1/query", {"query": query, "time": _seconds(t_ms)})

    def range(self, query: str, start_ms: int, end_ms: int, step_ms: int) -> dict:
        return self._get("/api/v1/query_range", {"query": query, "start": _seconds(start_ms),
                                                 "end": _seconds(end_ms), "step": _seconds(step_ms)})

    def close(self) -> None:
        self.client.close()
        self.server.terminate()
        self.server.stop()
        self._tmp.cleanup()


def _seconds(ms: int) -> str:
    return f"{ms // 1000}.{ms % 1000:03d}" if ms >= 0 else f"{ms / 1000:.3f}"


def main(argv: list[str] | None = None) -> int:
    import run_promql

    args = sys.argv[1:] if argv is None else argv
    files = [Path(f) if Path(f).exists() else run_promql.TESTDATA / f for f in args] or \
        sorted(run_promql.TESTDATA.glob("*.test"))
    backend = HttpBackend()
    total = run_promql.Tally()
    try:
        for f in files:
            run_promql.run_file(f, backend, total)
    finally:
        backend.close()
    for k, n in sorted(total.skip_reasons.items()):
        print(f"  skipped {n}: {k}")
    print(f"promql (http): {total.passed} passed, {total.failed} failed, {total.skipped} skipped")
    return 1 if total.failed else 0


if __name__ == "__main__":
    sys.exit(main())
