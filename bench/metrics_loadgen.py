"""Metrics load generator, run as its own process by bench_metrics.py.

Requests are encoded beforehand into a *spool* (``requests.bin`` + ``index.jsonl``: offset, length,
samples, time slice), so this process spends its CPU on sending, not on encoding. Requests go out
in spool order (time slice after time slice) from ``--connections`` threads sharing one queue, so
every series arrives (nearly) in time order — what a remote-write sender or a backfill does.

Spools are written by :func:`write_spool` (``kind`` = ``rw``: snappy remote write 1.0 from
``lookout.metrics.remote_write.encode_write_request``; ``otlp``: gzip-compressed OTLP
``ExportMetricsServiceRequest``, encoded with numpy here, verified against the official classes).

Prints one JSON line: {"sent_samples", "acked_samples", "refused", "errors", "requests", "seconds",
"latencies_ms": [...], "first_error"}
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import promgen  # noqa: E402
from bench import spool as spool_sender  # noqa: E402
from lookout.metrics.model import is_stale  # noqa: E402

HEADERS = {
    "rw": dict(promgen.REMOTE_WRITE_HEADERS),
    "otlp": {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
}
PATHS = {"rw": "/api/v1/write", "otlp": "/v1/metrics"}


# -- spool -----------------------------------------------------------------------------------------

def write_spool(spool: Path, batches: Iterable[list[tuple[int, bytes, int]]]) -> dict:
    """``batches`` yields lists of (slice, body, samples); the index is sorted by slice (stable), so
    the spool is sent slice-major whatever order the batches were generated in."""
    spool.mkdir(parents=True, exist_ok=True)
    entries = []
    off = 0
    with open(spool / "requests.bin", "wb") as f:
        for batch in batches:
            for sl, body, n in batch:
                f.write(body)
                entries.append((sl, len(entries), off, len(body), n))
                off += len(body)
    entries.sort()
    with open(spool / "index.jsonl", "w") as f:
        for sl, _, o, ln, n in entries:
            f.write(json.dumps({"slice": sl, "offset": o, "length": ln, "samples": n}) + "\n")
    return {"requests": len(entries), "bytes": off, "samples": sum(e[4] for e in entries)}


read_index = spool_sender.read_index


def rw_requests(series: list[promgen.Series], start_ms: int, end_ms: int, slice_ms: int,
                max_samples: int) -> Iterator[tuple[int, bytes, int]]:
    encode = promgen.encoder()
    for sl in promgen.time_slices(series, start_ms, end_ms, slice_ms):
        s_idx = int(sl[0][1][0] // slice_ms)
        for req in promgen.chunk_requests(sl, max_samples):
            yield s_idx, encode(req), sum(len(t) for _, t, _ in req)


# -- OTLP encoding (vectorized; the per-series constant part is built with the official classes) ---

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


def _ld(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _number_points(attrs: bytes, start_ns: int, t_ns: np.ndarray, v: np.ndarray) -> bytes:
    """Repeated ``data_points`` (field 1) of NumberDataPoint: attrs + start(2) time(3) as_double(4)."""
    body_len = len(attrs) + 27
    prefix = b"\x0a" + _varint(body_len) + attrs
    dt = np.dtype([("p", f"V{len(prefix)}"), ("a", "u1"), ("st", "<u8"), ("b", "u1"), ("t", "<u8"),
                   ("c", "u1"), ("v", "<f8")])
    arr = np.empty(len(t_ns), dt)
    arr["p"] = np.frombuffer(prefix, dtype=f"V{len(prefix)}")[0]
    arr["a"], arr["st"], arr["b"], arr["t"], arr["c"], arr["v"] = 0x11, start_ns, 0x19, t_ns, 0x21, v
    return arr.tobytes()


def _histogram_points(attrs: bytes, start_ns: int, t_ns: np.ndarray, count: np.ndarray, total: np.ndarray,
                      buckets: np.ndarray) -> bytes:
    """HistogramDataPoint: attrs (+ explicit_bounds) + start(2) time(3) count(4) sum(5) bucket_counts(6)."""
    nb = buckets.shape[1]
    blen = _varint(8 * nb)
    body_len = len(attrs) + 9 * 4 + 1 + len(blen) + 8 * nb
    prefix = b"\x0a" + _varint(body_len) + attrs
    dt = np.dtype([("p", f"V{len(prefix)}"), ("a", "u1"), ("st", "<u8"), ("b", "u1"), ("t", "<u8"),
                   ("c", "u1"), ("n", "<u8"), ("d", "u1"), ("s", "<f8"), ("e", "u1"), ("bl", f"V{len(blen)}"),
                   ("bk", "<u8", (nb,))])
    arr = np.empty(len(t_ns), dt)
    arr["p"] = np.frombuffer(prefix, dtype=f"V{len(prefix)}")[0]
    arr["bl"] = np.frombuffer(blen, dtype=f"V{len(blen)}")[0]
    arr["a"], arr["st"], arr["b"], arr["t"], arr["c"], arr["n"] = 0x11, start_ns, 0x19, t_ns, 0x21, count
    arr["d"], arr["s"], arr["e"], arr["bk"] = 0x29, total, 0x32, buckets
    return arr.tobytes()


def otlp_request(series: list[promgen.Series], start_ns: int) -> tuple[bytes, int]:
    """One ExportMetricsServiceRequest (uncompressed) for ``series`` (one time slice of some
    targets); returns (bytes, Prometheus-equivalent samples). job/instance become the resource
    attributes service.name/service.instance.id; counters are cumulative monotonic Sums,
    gauges Gauges, the classic histogram an explicit-bucket Histogram; stale markers are left out."""
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue
    from opentelemetry.proto.metrics.v1 import metrics_pb2

    def attrs_bytes(labels: dict[str, str], field: int) -> bytes:
        return b"".join(_ld(field, KeyValue(key=k, value={"string_value": v}).SerializeToString())
                        for k, v in labels.items())

    by_target: dict[tuple[str, str], dict[str, list[promgen.Series]]] = {}
    for s in series:
        labels = s[0]
        fam = promgen.family_of(labels["__name__"])
        by_target.setdefault((labels["job"], labels["instance"]), {}).setdefault(fam, []).append(s)
    rms = []
    samples = 0
    for (job, instance), fams in by_target.items():
        resource = metrics_pb2.ResourceMetrics().resource
        for k, v in (("service.name", job), ("service.instance.id", instance)):
            resource.attributes.add(key=k).value.string_value = v
        metrics = []
        for fam, members in fams.items():
            kind, help_ = promgen.FAMILIES[fam]
            head = _ld(1, fam.encode()) + _ld(2, help_.encode())
            points = []
            if kind == "histogram":
                groups: dict[tuple, dict[str, promgen.Series]] = {}
                for labels, t, v in members:
                    rest = {k: x for k, x in labels.items()
                            if k not in ("__name__", "job", "instance", "le")}
                    key = tuple(sorted(rest.items()))
                    part = labels["__name__"][len(fam):] + (labels.get("le", "") if "le" in labels else "")
                    groups.setdefault(key, {})[part] = (labels, t, v)
                for key, parts in groups.items():
                    les = sorted((float(p[len("_bucket"):]), p) for p in parts if p.startswith("_bucket"))
                    if "_sum" not in parts or "_count" not in parts or not les:
                        continue
                    ts = [parts[p][1][~is_stale(parts[p][2])] for _, p in les] + \
                         [parts[p][1][~is_stale(parts[p][2])] for p in ("_sum", "_count")]
                    common = ts[0]
                    for x in ts[1:]:
                        common = np.intersect1d(common, x, assume_unique=True)
                    if not len(common):
                        continue

                    def at(p, common=common, parts=parts):
                        _, t, v = parts[p]
                        return v[np.searchsorted(t, common)]

                    cum = np.stack([at(p) for _, p in les], axis=1)
                    per_bucket = np.diff(cum, axis=1, prepend=0).clip(0).astype(np.uint64)
                    dp = metrics_pb2.HistogramDataPoint(explicit_bounds=[b for b, _ in les if b != float("inf")])
                    for k, x in key:
                        dp.attributes.add(key=k).value.string_value = x
                    points.append(_histogram_points(dp.SerializeToString(), start_ns, common * 1_000_000,
                                                    at("_count").astype(np.uint64), at("_sum"), per_bucket))
                    samples += len(common) * (len(les) + 2)
                body = b"".join(points) + b"\x10\x02"  # aggregation_temporality = CUMULATIVE
                metrics.append(_ld(2, head + _ld(9, body)))
                continue
            for labels, t, v in members:
                keep = ~is_stale(v)
                rest = {k: x for k, x in labels.items() if k not in ("__name__", "job", "instance")}
                points.append(_number_points(attrs_bytes(rest, 7), start_ns, t[keep] * 1_000_000, v[keep]))
                samples += int(keep.sum())
            if kind == "counter":
                metrics.append(_ld(2, head + _ld(7, b"".join(points) + b"\x10\x02\x18\x01")))
            else:
                metrics.append(_ld(2, head + _ld(5, b"".join(points))))
        scope = _ld(1, _ld(1, b"promgen"))
        rms.append(_ld(1, _ld(1, resource.SerializeToString()) + _ld(2, scope + b"".join(metrics))))
    return b"".join(rms), samples


def otlp_requests(series: list[promgen.Series], start_ms: int, end_ms: int, slice_ms: int,
                  max_samples: int) -> Iterator[tuple[int, bytes, int]]:
    for sl in promgen.time_slices(series, start_ms, end_ms, slice_ms):
        s_idx = int(sl[0][1][0] // slice_ms)
        # keep whole targets together (a histogram needs all its series in one request)
        req: list[promgen.Series] = []
        n = 0
        last = None
        for s in sl:
            target = (s[0]["job"], s[0]["instance"])
            if req and n >= max_samples and target != last:
                body, k = otlp_request(req, start_ms * 1_000_000)
                yield s_idx, gzip.compress(body, 1), k
                req, n = [], 0
            req.append(s)
            n += len(s[1])
            last = target
        if req:
            body, k = otlp_request(req, start_ms * 1_000_000)
            yield s_idx, gzip.compress(body, 1), k


# -- sending -----------------------------------------------------------------------------------------

def send_spool(spool: Path, kind: str, target: str, connections: int, path: str | None = None) -> dict:
    return spool_sender.send_spool(spool, target, path or PATHS[kind], HEADERS[kind], connections, unit="samples")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spool", type=Path, required=True)
    ap.add_argument("--kind", choices=["rw", "otlp"], required=True)
    ap.add_argument("--target", required=True, help="HOST:PORT")
    ap.add_argument("--path", help="default /api/v1/write (rw) or /v1/metrics (otlp)")
    ap.add_argument("--connections", type=int, default=2)
    args = ap.parse_args()
    print(json.dumps(send_spool(args.spool, args.kind, args.target, args.connections, args.path)))


if __name__ == "__main__":
    main()
