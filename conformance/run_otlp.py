"""OTLP conformance runner: posts every example of ../shared/conformance/otlp/examples to a real
Lookout (started here on port 0 in a temporary directory) and checks what NOTES.md says must
hold. Prints ``N passed, M failed`` and the failures; exits non-zero on any failure."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent


def start(tmp: Path) -> tuple[subprocess.Popen, dict]:
    cfg = {"data_dir": str(tmp / "data"), "listen": {k: "127.0.0.1:0" for k in
                                                   ("otlp_grpc", "otlp_http", "http", "health")}}
    (tmp / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen([sys.executable, "-m", "lookout.cli", "serve", "--config", str(tmp / "cfg.yaml")],
                            cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ready = tmp / "data" / "listening.json"
    deadline = time.monotonic() + 60
    while not (ready.exists() and json.loads(ready.read_text())["ready"]):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("lookout did not start")
        time.sleep(0.05)
    return proc, json.loads(ready.read_text())


def main(examples: Path) -> int:
    passed, failures = 0, []
    with tempfile.TemporaryDirectory() as d:
        proc, addr = start(Path(d))
        try:
            for path in sorted(examples.glob("*.json")):
                signal = {"trace": "traces", "metrics": "metrics", "logs": "logs", "events": "logs"}[path.stem]
                r = httpx.post(f"http://{addr['otlp_http']}/v1/{signal}", content=path.read_bytes(),
                               headers={"Content-Type": "application/json"}, timeout=10)
                if r.status_code == 200 and r.headers["content-type"] == "application/json":
                    passed += 1
                else:
                    failures.append(f"{path.name}: POST /v1/{signal} -> {r.status_code} {r.text[:200]}")
            url = f"http://{addr['http']}/api/traces/5b8efff798038103d269b633813fc60c"
            deadline = time.monotonic() + 10
            while (r := httpx.get(url, timeout=10)).status_code != 200 and time.monotonic() < deadline:
                time.sleep(0.1)
            try:
                (batch,) = r.json()["batches"]
                (span,) = batch["scopeSpans"][0]["spans"]
                assert span["name"] == "I'm a server span", span["name"]
                assert span["kind"] == 2
                assert int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"]) == 1_000_000_000
                service = {"key": "service.name", "value": {"stringValue": "my.service"}}
                assert service in batch["resource"]["attributes"]
                passed += 1
            except Exception as e:  # noqa: BLE001 - a runner reports every failure
                failures.append(f"trace.json read back through the Tempo API: {e!r}")
        finally:
            proc.terminate()
            proc.wait(60)
    for f in failures:
        print("FAIL", f)
    print(f"otlp: {passed} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT.parent / "shared/conformance/otlp/examples")))
