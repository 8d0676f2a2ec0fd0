"""A trace workload of known shape for the processing layer: tests and bench_pipeline use it.

Every trace has a root SERVER span in ``frontend``, a CLIENT span calling ``backend``, the
``backend`` SERVER span and a CLIENT span to a database; the frontend half and the backend half
of a trace travel in different requests (as they would from two services). Shape, chosen per
trace from a seeded generator so the expected outcome is known before sending:

- ``error_rate`` of traces have an ERROR status on the backend span;
- ``slow_rate`` take ``slow_ms`` (over the latency threshold), the rest at most ``fast_ms``;
- ``health_rate`` are health checks (``http.route == "/healthz"``) that a filter should drop;
- every ``pii_every``-th trace carries an email, a card number and a bearer token.

:func:`expected_kept` is an independent, plain-Python statement of what a tail sampler with
``status_code: [ERROR]``, ``latency: {threshold_ms}`` and ``probabilistic`` must keep.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

PII = {
    "email": "jane.doe+orders@example.com",
    "card": "4111 1111 1111 1111",
    "token": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
}


@dataclass(slots=True)
class TraceShape:
    trace_id: bytes
    error: bool
    slow: bool
    health: bool
    pii: bool
    duration_ms: int


@dataclass(slots=True)
class Workload:
    traces: list[TraceShape]
    requests: list[bytes]  # in send order
    spans: int


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def probabilistic_keeps(trace_id: bytes, percentage: float, salt: str = "default-hash-seed") -> bool:
    """The Collector's probabilistic policy, written out plainly (NOTES §4)."""
    threshold = int((2**64 - 1) * percentage / 100) if percentage < 100 else 2**64 - 1
    return fnv1a64(salt.encode() + trace_id) <= threshold


def expected_kept(t: TraceShape, *, percentage: float, threshold_ms: int) -> bool:
    if t.health:
        return False
    return t.error or t.duration_ms >= threshold_ms or probabilistic_keeps(t.trace_id, percentage)


def _resource(req: ExportTraceServiceRequest, service: str):
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = service
    rs.resource.attributes.add(key="k8s.pod.name").value.string_value = f"{service}-7f9c"
    return rs.scope_spans.add()


def _span(ss, trace_id: bytes, span_id: bytes, parent: bytes, name: str, kind: int, start: int, dur_ns: int,
          route: str, error: bool = False, pii: bool = False):
    sp = ss.spans.add(trace_id=trace_id, span_id=span_id, parent_span_id=parent, name=name, kind=kind,
                      start_time_unix_nano=start, end_time_unix_nano=start + dur_ns)
    sp.attributes.add(key="http.route").value.string_value = route
    sp.attributes.add(key="http.request.method").value.string_value = "GET"
    if error:
        sp.status.code = 2
        sp.status.message = "upstream failed"
    if pii:
        sp.attributes.add(key="user.email").value.string_value = PII["email"]
        sp.attributes.add(key="payment.card").value.string_value = f"card {PII['card']} charged"
        sp.attributes.add(key="http.request.header.authorization").value.string_value = PII["token"]
        sp.attributes.add(key="url.full").value.string_value = (
            f"https://shop.example.com{route}?email={PII['email'].replace('+', '%2B')}&token=s3cr3tvalue")
    return sp


def generate(n_traces: int, *, seed: int = 7, traces_per_request: int = 250, error_rate: float = 0.005,
             slow_rate: float = 0.02, health_rate: float = 0.0, pii_every: int = 0, fast_ms: int = 400,
             slow_ms: int = 2500, start_ns: int | None = None) -> Workload:
    """Build the requests (frontend halves of a group of traces, then their backend halves)."""
    import time

    rng = random.Random(seed)
    base = start_ns if start_ns is not None else time.time_ns() - 60 * 10**9
    traces: list[TraceShape] = []
    requests: list[bytes] = []
    spans = 0
    for lo in range(0, n_traces, traces_per_request):
        front, back = ExportTraceServiceRequest(), ExportTraceServiceRequest()
        fss, bss, dss = _resource(front, "frontend"), _resource(back, "backend"), None
        for i in range(lo, min(lo + traces_per_request, n_traces)):
            tid = rng.randbytes(16)
            health = rng.random() < health_rate
            error = not health and rng.random() < error_rate
            slow = not health and rng.random() < slow_rate
            pii = bool(pii_every) and i % pii_every == 0
            dur = slow_ms if slow else rng.randint(5, fast_ms)
            t = TraceShape(tid, error, slow, health, pii, dur)
            traces.append(t)
            route = "/healthz" if health else rng.choice(["/api/cart", "/api/checkout", "/api/search"])
            start = base + i * 1000
            ids = [rng.randbytes(8) for _ in range(4)]
            dur_ns = dur * 10**6
            _span(fss, tid, ids[0], b"", f"GET {route}", 2, start, dur_ns, route, pii=pii)
            _span(fss, tid, ids[1], ids[0], "call backend", 3, start + 1000, dur_ns - 2000, route)
            _span(bss, tid, ids[2], ids[1], f"handle {route}", 2, start + 2000, dur_ns - 4000, route, error=error)
            if dss is None:
                dss = _resource(back, "backend")
            db = _span(dss, tid, ids[3], ids[2], "SELECT orders", 3, start + 3000, max(1000, dur_ns // 4), route)
            db.attributes.add(key="db.system").value.string_value = "postgresql"
            db.attributes.add(key="db.name").value.string_value = "orders"
            spans += 4
        requests += [front.SerializeToString(), back.SerializeToString()]
    return Workload(traces, requests, spans)


def late_span_request(t: TraceShape, seed: int = 99) -> bytes:
    """One extra span of ``t`` (sent after its decision): it must follow its trace's decision."""
    rng = random.Random(seed)
    req = ExportTraceServiceRequest()
    ss = _resource(req, "late-worker")
    import time

    _span(ss, t.trace_id, rng.randbytes(8), b"", "late job", 1, time.time_ns(), 10**6, "/jobs")
    return req.SerializeToString()


def iter_chunks(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i:i + n]
