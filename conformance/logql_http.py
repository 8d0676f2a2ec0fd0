"""The LogQL runner's HTTP backend: Loki's test scripts through a real Lookout node.

Entries go in as promtail/Alloy would send them (JSON to ``/loki/api/v1/push``, structured
metadata as the third element of each value); queries go through ``/loki/api/v1/query`` and
``/loki/api/v1/query_range``. Every ``clear`` starts a new tenant. The scripts' epoch is
2026-01-01, so the node accepts entries of any age and keeps them.

Usage: ``python conformance/logql_http.py [files...]`` (same output as run_logql.py).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lookout.devserver import LookoutProcess, metric_sum  # noqa: E402

CONFIG = {
    "log_level": "warning",
    "storage": {"retention": "36500d", "flush_interval": "1h"},
    "logs": {"reject_old_samples_max_age": "0s", "max_lines_per_second": 0, "max_query_range": "36500d"},
}


class HttpBackend:
    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="logql-http-")
        self.server = LookoutProcess(Path(self._tmp.name) / "data", CONFIG).start()
        self.client = httpx.Client(base_url=self.server.http, timeout=120)
        self.section = 0
        self._pending: list[dict[str, Any]] = []

    @property
    def tenant(self) -> str:
        return f"logqltest-{self.section}"

    def clear(self) -> None:
        self._pending.clear()
        self.section += 1

    def push(self, labels: dict[str, str], entries: list[tuple[int, str, dict[str, str]]]) -> None:
        values = [[str(ts), line, md] if md else [str(ts), line] for ts, line, md in entries]
        if values:
            self._pending.append({"stream": labels, "values": values})

    def _flush_pending(self) -> None:
        """Send what the load block pushed in one request, then wait until it is queryable."""
        if not self._pending:
            return
        body = json.dumps({"streams": self._pending}).encode()
        self._pending = []
        r = self.client.post("/loki/api/v1/push", content=body,
                             headers={"Content-Type": "application/json", "X-Scope-OrgID": self.tenant})
        if r.status_code != 204:
            raise RuntimeError(f"push refused: {r.status_code} {r.text}")
        deadline = time.monotonic() + 60
        while metric_sum(self.client.get("/metrics").text, "lookout_log_consumer_lag_bytes", signal="logs") > 0:
            if time.monotonic() > deadline:
                raise RuntimeError("logs consumer did not catch up within 60 s")
            time.sleep(0.005)

    def _query(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        self._flush_pending()
        r = self.client.get(path, params=params, headers={"X-Scope-OrgID": self.tenant})
        if r.status_code == 200:
            return r.json()
        return {"status": "error", "errorType": "bad_data", "error": r.text.strip(), "code": r.status_code}

    def instant(self, query: str, t_ns: int) -> dict[str, Any]:
        return self._query("/loki/api/v1/query", {"query": query, "time": str(t_ns), "limit": "5000"})

    def range(self, query: str, start_ns: int, end_ns: int, step_ns: int) -> dict[str, Any]:
        return self._query("/loki/api/v1/query_range", {"query": query, "start": str(start_ns), "end": str(end_ns),
                                                        "step": f"{step_ns / 1e9:g}", "limit": "5000"})

    def close(self) -> None:
        self.client.close()
        self.server.terminate()
        self.server.stop()
        self._tmp.cleanup()


def main(argv: list[str] | None = None) -> int:
    import run_logql

    args = sys.argv[1:] if argv is None else argv
    files = [Path(f) for f in args] or sorted(run_logql.DEFAULT_DIR.glob("*.logqltest"))
    backend = HttpBackend()
    passed = failed = 0
    try:
        for f in files:
            p, fails = run_logql.run_file(f, backend, False)
            for line in fails:
                print(line)
            passed += p
            failed += len(fails)
    finally:
        backend.close()
    print(f"logql (http): {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
