"""OTLP trace load generator, run as its own process(es) by bench_traces.py.

Realistic shape (hot-path-measurements.md): requests of ~1,000 spans from 10 resources with 10
resource attributes each, traces of 10-50 spans, ~10 string/int attributes per span, 5 % errors
with an exception event. Requests are pre-built (distinct random ids) and cycled, so the
generator spends its CPU on sending, not on building protobufs.

Prints one JSON line: {"sent_spans", "acked_spans", "refused", "errors", "seconds", "latencies_ms": [...]}
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import threading
import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

ROUTES = ["/api/cart", "/api/checkout", "/api/products/{id}", "/api/users/{id}", "/healthz", "/api/search"]
SERVICES = [f"svc-{i}" for i in range(20)]


def build_request(rng: random.Random, spans_target: int = 1000) -> tuple[bytes, int]:
    req = ExportTraceServiceRequest()
    now = time.time_ns()
    n = 0
    while n < spans_target:
        rs = req.resource_spans.add()
        svc = rng.choice(SERVICES)
        for k, v in [("service.name", svc), ("service.namespace", "shop"), ("service.version", "1.4.2"),
                     ("deployment.environment", "prod"), ("host.name", f"node-{rng.randrange(50)}"),
                     ("k8s.namespace.name", "shop"), ("k8s.pod.name", f"{svc}-{rng.randrange(1000):04d}"),
                     ("k8s.container.name", svc), ("cloud.region", "eu-west-1"),
                     ("telemetry.sdk.language", "python")]:
            rs.resource.attributes.add(key=k).value.string_value = v
        ss = rs.scope_spans.add()
        ss.scope.name = "opentelemetry.instrumentation.flask"
        ss.scope.version = "0.48b0"
        for _ in range(rng.randrange(1, 5)):
            trace_id = rng.randbytes(16)
            size = rng.randrange(10, 51)
            parent = b""
            start = now - rng.randrange(10**9)
            for j in range(size):
                sid = rng.randbytes(8)
                dur = int(rng.lognormvariate(15, 1.5))
                sp = ss.spans.add(trace_id=trace_id, span_id=sid, parent_span_id=parent,
                                  name=rng.choice(ROUTES) if j == 0 else f"SELECT table_{rng.randrange(15)}",
                                  kind=2 if j == 0 else 3, start_time_unix_nano=start + j * 1000,
                                  end_time_unix_nano=start + j * 1000 + dur)
                a = sp.attributes
                a.add(key="http.request.method").value.string_value = rng.choice(["GET", "POST"])
                a.add(key="http.route").value.string_value = rng.choice(ROUTES)
                a.add(key="http.response.status_code").value.int_value = rng.choice([200] * 19 + [500])
                a.add(key="url.path").value.string_value = f"/api/products/{rng.randrange(100000)}"
                a.add(key="server.address").value.string_value = "shop.example.com"
                a.add(key="network.peer.port").value.int_value = rng.randrange(30000, 60000)
                a.add(key="user_agent.original").value.string_value = "Mozilla/5.0 (X11; Linux x86_64)"
                a.add(key="db.system").value.string_value = "postgresql"
                a.add(key="thread.id").value.int_value = rng.randrange(64)
                a.add(key="request.id").value.string_value = rng.randbytes(8).hex()
                if rng.random() < 0.05:
                    sp.status.code = 2
                    ev = sp.events.add(time_unix_nano=start + j * 1000 + dur // 2, name="exception")
                    ev.attributes.add(key="exception.type").value.string_value = "TimeoutError"
                    ev.attributes.add(key="exception.message").value.string_value = "upstream timed out"
                parent = sid
                n += 1
    return req.SerializeToString(), n


def _merge(out: dict, lock, lat: list, acked: int, sent: int, refused: int, errors: int) -> None:
    with lock:
        out["latencies_ms"] += lat
        out["acked_spans"] += acked
        out["sent_spans"] += sent
        out["refused"] += refused
        out["errors"] += errors


def run_http(host: str, port: int, pool: list[tuple[bytes, int]], deadline: float, out: dict, lock) -> None:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    i = random.randrange(len(pool))
    lat, acked, refused, errors, sent = [], 0, 0, 0, 0
    while time.monotonic() < deadline:
        body, n = pool[i % len(pool)]
        i += 1
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/v1/traces", body, {"Content-Type": "application/x-protobuf"})
            resp = conn.getresponse()
            resp.read()
        except OSError:
            errors += 1
            conn = http.client.HTTPConnection(host, port, timeout=30)
            continue
        lat.append((time.perf_counter() - t0) * 1000)
        sent += n
        if resp.status == 200:
            acked += n
        else:
            refused += 1
            time.sleep(float(resp.getheader("Retry-After") or 1))
    _merge(out, lock, lat, acked, sent, refused, errors)


def run_grpc(target: str, pool: list[tuple[bytes, int]], deadline: float, out: dict, lock) -> None:
    import grpc

    ch = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20)])
    export = ch.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
    i = random.randrange(len(pool))
    lat, acked, refused, errors, sent = [], 0, 0, 0, 0
    while time.monotonic() < deadline:
        body, n = pool[i % len(pool)]
        i += 1
        t0 = time.perf_counter()
        try:
            export(body, timeout=30)
        except grpc.RpcError as e:
            if e.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE):
                refused += 1
                time.sleep(1)
            else:
                errors += 1
            continue
        lat.append((time.perf_counter() - t0) * 1000)
        sent += n
        acked += n
    _merge(out, lock, lat, acked, sent, refused, errors)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--transport", choices=["http", "grpc"], required=True)
    ap.add_argument("--target", required=True, help="HOST:PORT")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--pool", type=int, default=60, help="distinct pre-built requests")
    ap.add_argument("--seed", type=int, default=os.getpid())
    args = ap.parse_args()
    rng = random.Random(args.seed)
    pool = [build_request(rng) for _ in range(args.pool)]
    out = {"sent_spans": 0, "acked_spans": 0, "refused": 0, "errors": 0, "latencies_ms": []}
    lock = threading.Lock()
    host, port = args.target.rsplit(":", 1)
    start = time.monotonic()
    deadline = start + args.seconds
    threads = []
    for _ in range(args.connections):
        if args.transport == "http":
            t = threading.Thread(target=run_http, args=(host, int(port), pool, deadline, out, lock))
        else:
            t = threading.Thread(target=run_grpc, args=(args.target, pool, deadline, out, lock))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    out["seconds"] = time.monotonic() - start
    out["request_bytes_avg"] = sum(len(b) for b, _ in pool) / len(pool)
    out["spans_per_request_avg"] = sum(n for _, n in pool) / len(pool)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
