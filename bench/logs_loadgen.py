"""OTLP logs load generator, run as its own process by bench_logs.py.

Requests are encoded beforehand into a *spool* (``requests.bin`` = gzip-compressed
``ExportLogsServiceRequest`` bodies back to back, ``index.jsonl`` = offset, length, records), so
the sending process spends its CPU on sending, not on encoding. Requests go out in spool order
(oldest first) from ``--connections`` threads sharing one queue, each on its own keep-alive
connection, as a Collector's exporter with several consumers does.

Data shape (Kubernetes, as a node-level Collector with the filelog/k8sattributes processors
ships it): ``--nodes`` nodes, each running ``--pods-per-node`` pods of 6 services; one request
per node per time slice carrying one ResourceLogs per pod (k8s/service resource attributes), one
scope, and ``--per-request`` records split evenly between the pods. Every record has time and
observed time, a severity, an ``log.iostream`` attribute (+ ``code.function`` on app logs), a
trace/span id on 85 % of lines; bodies are logfmt (5 services) or pino-style JSON (``frontend``),
~100-220 bytes, access logs and app logs with random ids, paths, sizes and durations. A rare
line (``RARE_NEEDLE``) appears about once in 100,000 lines.

Records are encoded by hand (protobuf wire format, bytes joins) — the resource and scope parts
with the official classes — and the first request is checked against the official classes.

Prints one JSON line: {"sent_records", "acked_records", "refused", "errors", "requests", "seconds",
"latencies_ms": [...], "first_error"}
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import struct
import sys
import time
from pathlib import Path

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import spool as spool_sender  # noqa: E402

HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
SERVICES = ["checkout", "cart", "payments", "inventory", "users", "frontend"]  # frontend logs JSON
LOGFMT_SERVICE = "checkout"
RARE_NEEDLE = "circuit breaker opened"
RARE_RATE = 1e-5
COMMON_NEEDLE = "GET"
LEVELS = ([("info", 9, "INFO")] * 14 + [("debug", 5, "DEBUG")] * 3 + [("warn", 13, "WARN")] * 2
          + [("error", 17, "ERROR")])
PATHS = ["/api/v1/orders/{}", "/api/v1/cart/{}", "/api/v1/products/{}", "/api/v1/users/{}", "/healthz",
         "/api/v1/search?q=item{}", "/static/js/app.{}.js"]
METHODS = ["GET", "GET", "GET", "POST", "PUT", "DELETE", "GET", "POST"]
STATUSES = [200] * 16 + [201, 204, 301, 400, 404, 404, 500, 503]
APP_MSGS = ['msg="cache miss" key=user:{a} ttl_s={b}', 'msg="db query" table=orders rows={a} took_ms={b}',
            'msg="retrying upstream call" upstream=pricing attempt={c} backoff_ms={b}',
            'msg="connection reset by peer" remote=10.4.{c}.{a8}:5432',
            'msg="payment authorized" order_id=ord-{a} amount_cents={b} currency=EUR',
            'msg="message published" topic=orders.v1 partition={c} offset={a}{b}',
            'msg="slow request" path=/api/v1/search latency_ms={b} threshold_ms=250']
FUNCS = ["handle_request", "process_order", "fetch_cart", "authorize", "publish", "query_db"]
_LE_Q = struct.Struct("<Q")
_LE_I = struct.Struct("<I")


# -- protobuf wire helpers -------------------------------------------------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


_VARINTS = [_varint(i) for i in range(1 << 14)]


def _vi(n: int) -> bytes:
    return _VARINTS[n] if n < 16384 else _varint(n)


def _ld(tag: int, payload: bytes) -> bytes:
    """A length-delimited field; ``tag`` is the whole key byte (field << 3 | 2)."""
    return bytes((tag,)) + _vi(len(payload)) + payload


def _kv(key: str, value: str) -> bytes:
    return KeyValue(key=key, value={"string_value": value}).SerializeToString()


_SEV = {lvl: b"\x10" + _vi(num) + _ld(0x1A, text.encode()) for lvl, num, text in LEVELS}
_ATTR_STDOUT = _ld(0x32, _kv("log.iostream", "stdout"))
_ATTR_STDERR = _ld(0x32, _kv("log.iostream", "stderr"))
_ATTR_FUNC = [_ld(0x32, _kv("code.function", f)) for f in FUNCS]


def resource_bytes(node: int, pod: int, svc: str) -> bytes:
    pod_name = f"{svc}-7d9f8b{node:x}c-{pod:05d}"
    r = Resource()
    for k, v in [("service.name", svc), ("service.namespace", "shop"), ("service.version", "2.3.1"),
                 ("deployment.environment", "prod"), ("k8s.cluster.name", "eu-1"), ("k8s.namespace.name", "shop"),
                 ("k8s.pod.name", pod_name), ("k8s.container.name", svc), ("k8s.deployment.name", svc),
                 ("k8s.node.name", f"node-{node}"), ("host.name", f"node-{node}"), ("cloud.region", "eu-west-1")]:
        r.attributes.add(key=k).value.string_value = v
    return _ld(0x0A, r.SerializeToString())


SCOPE = _ld(0x0A, InstrumentationScope(name="filelog").SerializeToString())


# -- bodies ----------------------------------------------------------------------------------------

class _Iso:
    """Per-second RFC 3339 prefixes, cached (lines of one slice share a few seconds)."""

    def __init__(self) -> None:
        self.cache: dict[int, str] = {}

    def __call__(self, t_ns: int) -> str:
        s = t_ns // 1_000_000_000
        p = self.cache.get(s)
        if p is None:
            if len(self.cache) > 4096:
                self.cache.clear()
            p = self.cache[s] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s))
        return f"{p}.{t_ns // 1_000_000 % 1000:03d}Z"


def body_line(rng: random.Random, svc: str, host: str, t_ns: int, iso: _Iso) -> tuple[str, str, bool]:
    """(body, level, is_access_log)."""
    r = rng.random()
    lvl = LEVELS[int(r * 1e6) % len(LEVELS)][0]
    a, b, c = rng.randrange(1, 99999), rng.randrange(1, 2000), int(r * 977) % 9 + 1
    if r < 0.6:
        i = a % len(PATHS)
        method = METHODS[(a >> 3) % len(METHODS)]
        status = STATUSES[(b + a) % len(STATUSES)]
        lvl = "error" if status >= 500 else "warn" if status >= 400 else "info"
        path = PATHS[i].format(a)
        if svc == "frontend":
            return (f'{{"level":"{lvl}","time":{t_ns // 1_000_000},"pid":1,"hostname":"{host}","req":{{"method":'
                    f'"{method}","url":"{path}"}},"res":{{"statusCode":{status}}},"responseTime":{b / 7:.1f},'
                    f'"msg":"request completed"}}'), lvl, True
        return (f'ts={iso(t_ns)} level={lvl} caller=http.go:{118 + c} msg="request completed" method={method} '
                f'path={path} status={status} duration_ms={b / 7:.3f} bytes={a % 65536} '
                f'client=10.{c}.{a % 251}.{b % 253 + 1}'), lvl, True
    if r < 0.6 + RARE_RATE:
        msg, lvl = f'msg="{RARE_NEEDLE}" upstream=payments-gateway failures={c} window_s=30', "error"
    else:
        msg = APP_MSGS[a % len(APP_MSGS)].format(a=a, b=b, c=c, a8=a % 256)
    if svc == "frontend":
        return (f'{{"level":"{lvl}","time":{t_ns // 1_000_000},"pid":1,"hostname":"{host}",'
                f'"logger":"app","event":{json.dumps(msg)}}}'), lvl, False
    return f'ts={iso(t_ns)} level={lvl} caller=app.go:{40 + a % 300} {msg}', lvl, False


def build_request(rng: random.Random, node: int, pods: list[tuple[int, str, bytes]], records: int,
                  t_lo_ns: int, t_hi_ns: int, iso: _Iso) -> bytes:
    """One ExportLogsServiceRequest (uncompressed) for one node: one ResourceLogs per pod."""
    per_pod = [records // len(pods) + (1 if i < records % len(pods) else 0) for i in range(len(pods))]
    span = max(1, t_hi_ns - t_lo_ns)
    rls = []
    for (pod, svc, res), n in zip(pods, per_pod, strict=True):
        host = f"{svc}-7d9f8b{node:x}c-{pod:05d}"
        ts = sorted(t_lo_ns + rng.randrange(span) for _ in range(n))
        ids = rng.randbytes(24 * n)
        recs = []
        for j, t in enumerate(ts):
            body, lvl, access = body_line(rng, svc, host, t, iso)
            bb = body.encode()
            anyv = b"\x0a" + _vi(len(bb)) + bb
            parts = [b"\x09", _LE_Q.pack(t), _SEV[lvl], b"\x2a", _vi(len(anyv)), anyv,
                     _ATTR_STDERR if lvl == "error" else _ATTR_STDOUT]
            if not access:
                parts.append(_ATTR_FUNC[j % len(_ATTR_FUNC)])
            if (ids[24 * j] % 100) < 85:
                parts += [b"\x45\x01\x00\x00\x00\x4a\x10", ids[24 * j:24 * j + 16], b"\x52\x08",
                          ids[24 * j + 16:24 * j + 24]]
            parts += [b"\x59", _LE_Q.pack(t + 200_000 + ids[24 * j + 1] * 10_000)]
            rec = b"".join(parts)
            recs.append(b"\x12" + _vi(len(rec)) + rec)
        rls.append(_ld(0x0A, res + _ld(0x12, SCOPE + b"".join(recs))))
    return b"".join(rls)


def topology(nodes: int, pods_per_node: int) -> list[list[tuple[int, str, bytes]]]:
    out = []
    for node in range(nodes):
        pods = []
        for k in range(pods_per_node):
            pod = node * pods_per_node + k
            svc = SERVICES[pod % len(SERVICES)]
            pods.append((pod, svc, resource_bytes(node, pod, svc)))
        out.append(pods)
    return out


def write_spool(spool: Path, lines: int, start_ns: int, end_ns: int, *, per_request: int = 1000, nodes: int = 6,
                pods_per_node: int = 4, raw_lines: int = 0, seed: int = 7, gzip_level: int = 1) -> dict:
    """Encode ``lines`` records as requests of ``per_request`` records, time slices spread evenly
    over [start_ns, end_ns), oldest first. The uncompressed payloads of the first ``raw_lines``
    lines also go to ``raw.bin`` (for the zstd -19 reference)."""
    spool.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    topo = topology(nodes, pods_per_node)
    n_req = max(1, -(-lines // per_request))
    n_slices = -(-n_req // nodes)
    slice_ns = (end_ns - start_ns) // n_slices
    iso = _Iso()
    entries, off, done, raw_done = [], 0, 0, 0
    checked = False
    with open(spool / "requests.bin", "wb") as f, open(spool / "raw.bin", "wb") as raw:
        for s in range(n_slices):
            lo = start_ns + s * slice_ns
            for node in range(nodes):
                if done >= lines:
                    break
                n = min(per_request, lines - done)
                body = build_request(rng, node, topo[node], n, lo, lo + slice_ns, iso)
                if not checked:  # the hand encoding must be what the official classes read
                    req = ExportLogsServiceRequest.FromString(body)
                    got = sum(len(sl.log_records) for rl in req.resource_logs for sl in rl.scope_logs)
                    assert got == n and req.SerializeToString() == body, "bad hand-encoded OTLP"
                    checked = True
                if raw_done < raw_lines:
                    raw.write(body)
                    raw_done += n
                z = gzip.compress(body, gzip_level)
                f.write(z)
                entries.append({"offset": off, "length": len(z), "records": n, "raw": len(body)})
                off += len(z)
                done += n
    with open(spool / "index.jsonl", "w") as f:
        for e in entries:
            f.write(json.dumps(e) + "\n")
    info = {"requests": len(entries), "records": done, "gzip_bytes": off,
            "raw_bytes": sum(e["raw"] for e in entries), "raw_lines": raw_done, "streams": nodes * pods_per_node,
            "start_ns": start_ns, "end_ns": end_ns}
    (spool / "info.json").write_text(json.dumps(info))
    return info


read_index = spool_sender.read_index


# -- sending -----------------------------------------------------------------------------------------

def send_spool(spool: Path, target: str, connections: int, max_requests: int | None = None,
               path: str = "/v1/logs") -> dict:
    return spool_sender.send_spool(spool, target, path, HEADERS, connections, unit="records",
                                   max_requests=max_requests, attempts=50)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spool", type=Path, required=True)
    ap.add_argument("--target", required=True, help="HOST:PORT of the OTLP/HTTP listener")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--max-requests", type=int, default=None, help="send only the first N requests of the spool")
    args = ap.parse_args()
    print(json.dumps(send_spool(args.spool, args.target, args.connections, args.max_requests)))


if __name__ == "__main__":
    main()
