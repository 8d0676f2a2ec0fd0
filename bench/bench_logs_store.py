"""Log store benchmark: decode, append, bytes/line against zstd -19 of the OTLP, and |= scans.

Synthetic Kubernetes-style logs: 40 pods in 4 services, each request carrying one resource
(service/k8s labels plus host/os/sdk attributes that become structured metadata) and 500 records
with a trace id on 80 % of them, a span id, 3 attributes and an access-log or app-log line with
random numbers. In-process figures (no HTTP, no WAL).

    .venv/bin/python bench/bench_logs_store.py [--lines 200000] [--row-group 32768]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import cramjam
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lookout.config import Storage  # noqa: E402
from lookout.logs.model import LabelMatcher, SelectHints  # noqa: E402
from lookout.logs.otlp_logs import decode_logs  # noqa: E402
from lookout.logs.store import LogStore  # noqa: E402
from lookout.selfmon.registry import Registry  # noqa: E402
from lookout.storage.blocks import BlockStore  # noqa: E402

PATHS = ["/api/v1/orders", "/api/v1/users", "/healthz", "/api/v1/cart", "/static/app.js", "/api/v1/search"]
METHODS = ["GET", "GET", "GET", "POST", "PUT", "DELETE"]
LEVELS = [(9, "INFO"), (9, "INFO"), (9, "INFO"), (5, "DEBUG"), (13, "WARN"), (17, "ERROR")]
MESSAGES = ["cache miss for key user:{n}", "db query took {ms}ms rows={n}", "retrying upstream call attempt={a}",
            "connection reset by peer", "request completed status={st} bytes={n}"]


def _kv(key: str, value) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def make_request(rng: random.Random, pod: int, records: int, t0_ns: int) -> bytes:
    svc = ["checkout", "users", "search", "frontend"][pod % 4]
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.extend([
        _kv("service.name", svc), _kv("service.namespace", "shop"), _kv("k8s.namespace.name", "prod"),
        _kv("k8s.pod.name", f"{svc}-7d9f8b-{pod:05d}"), _kv("k8s.container.name", svc),
        _kv("k8s.cluster.name", "eu-1"), _kv("host.name", f"node-{pod % 7}"), _kv("os.type", "linux"),
        _kv("telemetry.sdk.language", "python"), _kv("telemetry.sdk.version", "1.45.2"),
        _kv("process.pid", 1000 + pod)])
    sl = rl.scope_logs.add()
    sl.scope.name = f"{svc}.app"
    sl.scope.version = "2.3.1"
    t = t0_ns
    for _ in range(records):
        t += rng.randint(100_000, 20_000_000)
        lr = sl.log_records.add()
        lr.time_unix_nano = t
        lr.observed_time_unix_nano = t + rng.randint(50_000, 3_000_000)
        sev, text = rng.choice(LEVELS)
        lr.severity_number, lr.severity_text = sev, text
        if rng.random() < 0.8:
            lr.trace_id = rng.randbytes(16)
            lr.span_id = rng.randbytes(8)
            lr.flags = 1
        if rng.random() < 0.6:
            i = rng.randrange(len(PATHS))
            status = rng.choice([200, 200, 200, 404, 500])
            line = (f'10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)} - - '
                    f'"{METHODS[i]} {PATHS[i]}?id={rng.randint(1, 99999)} HTTP/1.1" {status} '
                    f'{rng.randint(200, 90000)} {rng.random() * 0.5:.4f}')
            lr.attributes.extend([_kv("http.method", METHODS[i]), _kv("http.route", PATHS[i]),
                                  _kv("user.id", rng.randint(1, 5000))])
        else:
            line = rng.choice(MESSAGES).format(n=rng.randint(1, 99999), ms=rng.randint(1, 900), a=rng.randint(1, 5),
                                              st=rng.choice([200, 201, 503]))
            lr.attributes.extend([_kv("code.function", "handle"), _kv("thread.name", f"worker-{rng.randint(1, 8)}"),
                                  _kv("retry", rng.random() < 0.1)])
        lr.body.string_value = line
    return req.SerializeToString()


def make_corpus(lines: int, per_request: int = 500, pods: int = 40, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    t0 = time.time_ns() - 3600 * 10**9
    return [make_request(rng, i % pods, per_request, t0 + (i // pods) * 10 * 10**9)
            for i in range(max(1, lines // per_request))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--row-group", type=int, default=32768)
    args = ap.parse_args()
    payloads = make_corpus(args.lines)
    n = sum(1 for _ in payloads) * 500
    raw = b"".join(payloads)

    t = time.perf_counter()
    batches = [decode_logs(payloads[i:i + 4]) for i in range(0, len(payloads), 4)]
    dt = time.perf_counter() - t
    print(f"decode:  {n / dt:,.0f} records/s ({len(payloads)} requests of 500 records, 4 per call)")

    with tempfile.TemporaryDirectory() as tmp:
        store = LogStore(BlockStore(tmp, fsync=False), Storage(row_group_rows=args.row_group), Registry())
        t = time.perf_counter()
        for b in batches:
            store.append("bench", b)
        dt = time.perf_counter() - t
        print(f"append:  {n / dt:,.0f} records/s")
        t = time.perf_counter()
        store.flush(lambda _o: None)
        print(f"flush:   {n / (time.perf_counter() - t):,.0f} records/s (encode + sort + Parquet + sidecars)")
        metas = store.blocks.list_blocks("bench", "logs")
        stored = sum(m.stored_bytes for m in metas)
        z19 = len(cramjam.zstd.compress(raw, level=19))
        print(f"size:    {stored / n:.1f} B/line in the L0 block (zstd 3) vs {z19 / n:.1f} B/line zstd -19 of the "
              f"OTLP ({len(raw) / n:.0f} B/line raw OTLP)")
        store.append("bench", batches[0])  # a second block in the window, so compaction rewrites both
        store.flush(lambda _o: None)
        t = time.perf_counter()
        out = store.compact()
        dt = time.perf_counter() - t
        rows = sum(m.rows for m in out)
        print(f"compact: {rows / dt:,.0f} rows/s; {sum(m.stored_bytes for m in out) / max(rows, 1):.1f} B/line "
              f"after compaction (zstd 9)")
        q = store.querier("bench")
        span = (0, 2**62)
        for needle in ("status=503", "HTTP/1.1\" 500", "?id=4242 "):
            t = time.perf_counter()
            sel = q.select([LabelMatcher("service_namespace", "=", "shop")], *span, SelectHints(contains=[needle]))
            dt = time.perf_counter() - t
            print(f"scan:    |= {needle!r}: {n / dt:,.0f} lines/s over {n:,} lines ({sel.entries.num_rows:,} hits)")
        mds = batches[len(batches) // 2].entries.column("metadata").to_pylist()
        hexid = next((dict(md)["trace_id"] for md in mds if "trace_id" in dict(md)), None)
        if hexid:
            t = time.perf_counter()
            sel = q.select([LabelMatcher("service_name", "=~", ".+")], *span, SelectHints(trace_id=hexid))
            print(f"trace:   trace_id lookup {1000 * (time.perf_counter() - t):.1f} ms, "
                  f"{q.row_groups_read} row groups read so far, {sel.entries.num_rows} hit(s)")


if __name__ == "__main__":
    main()
