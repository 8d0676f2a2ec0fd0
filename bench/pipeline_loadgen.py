"""Load generator for bench_pipeline.py, run as its own process.

``--write-spool DIR --traces N`` encodes the workload of bench/sampling_workload.py (4 spans per
trace, frontend and backend halves in separate requests, 0.5 % errors, 2 % slow, 5 % health
checks, PII in every 20th trace) into a spool; ``--spool DIR --target HOST:PORT`` sends it over
``--connections`` keep-alive connections to ``POST /v1/traces`` and prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import spool as spool_sender  # noqa: E402
from bench.sampling_workload import generate  # noqa: E402

HEADERS = {"Content-Type": "application/x-protobuf"}


def write_spool(spool: Path, traces: int, seed: int = 7) -> dict:
    spool.mkdir(parents=True, exist_ok=True)
    wl = generate(traces, seed=seed, health_rate=0.05, pii_every=20)
    entries, off = [], 0
    with open(spool / "requests.bin", "wb") as f:
        for body in wl.requests:
            f.write(body)
            entries.append({"offset": off, "length": len(body), "spans": 0})
            off += len(body)
    # spans per request: every request holds the halves (2 spans each) of the same traces
    per_req = [2 * min(250, traces - i * 250) for i in range(len(wl.requests) // 2) for _ in (0, 1)]
    for e, n in zip(entries, per_req, strict=True):
        e["spans"] = n
    with open(spool / "index.jsonl", "w") as f:
        for e in entries:
            f.write(json.dumps(e) + "\n")
    info = {"traces": traces, "spans": wl.spans, "requests": len(entries), "bytes": off,
            "errors": sum(t.error for t in wl.traces), "slow": sum(t.slow for t in wl.traces),
            "health": sum(t.health for t in wl.traces)}
    (spool / "info.json").write_text(json.dumps(info))
    return info


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--write-spool", type=Path)
    ap.add_argument("--traces", type=int, default=200_000)
    ap.add_argument("--spool", type=Path)
    ap.add_argument("--target")
    ap.add_argument("--connections", type=int, default=4)
    args = ap.parse_args()
    if args.write_spool:
        print(json.dumps(write_spool(args.write_spool, args.traces)))
        return
    print(json.dumps(spool_sender.send_spool(args.spool, args.target, "/v1/traces", HEADERS, args.connections,
                                             unit="spans", attempts=100)))


if __name__ == "__main__":
    main()
