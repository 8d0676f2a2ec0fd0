"""Send a spool of pre-encoded requests (``requests.bin`` + ``index.jsonl``) from N keep-alive
connections, retrying 429/503 after their Retry-After, and count what was acked.

Shared by the metrics and logs load generators: encoding happens before the clock starts, so
the figures measure the server, not the generator. ``unit`` names the index field that counts
items per request ("samples", "records") and the counters in the result.
"""

from __future__ import annotations

import http.client
import json
import mmap
import queue
import threading
import time
from pathlib import Path


def read_index(spool: Path) -> list[dict]:
    return [json.loads(line) for line in (spool / "index.jsonl").read_text().splitlines()]


def _worker(host: str, port: int, path: str, headers: dict, data, work: queue.Queue, unit: str,
            attempts: int, out: dict, lock: threading.Lock) -> None:
    conn = http.client.HTTPConnection(host, port, timeout=300)
    lat, acked, sent, refused, errors, first_error = [], 0, 0, 0, 0, None
    while True:
        try:
            entry = work.get_nowait()
        except queue.Empty:
            break
        body = data[entry["offset"]:entry["offset"] + entry["length"]]
        for _attempt in range(attempts):
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body, headers)
                resp = conn.getresponse()
                text = resp.read()
            except OSError as e:
                errors += 1
                first_error = first_error or repr(e)
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=300)
                time.sleep(0.5)
                continue
            lat.append((time.perf_counter() - t0) * 1000)
            if 200 <= resp.status < 300:
                acked += entry[unit]
                break
            if resp.status in (429, 503):
                refused += 1
                time.sleep(float(resp.getheader("Retry-After") or 1))
                continue
            errors += 1
            first_error = first_error or f"{resp.status} {text[:300]!r}"
            break
        sent += entry[unit]
    with lock:
        out["latencies_ms"] += lat
        out[f"acked_{unit}"] += acked
        out[f"sent_{unit}"] += sent
        out["refused"] += refused
        out["errors"] += errors
        out["first_error"] = out["first_error"] or first_error


def send_spool(spool: Path, target: str, path: str, headers: dict, connections: int, *, unit: str,
               max_requests: int | None = None, attempts: int = 20) -> dict:
    index = read_index(spool)[:max_requests]
    work: queue.Queue = queue.Queue()
    for e in index:
        work.put(e)
    host, port = target.rsplit(":", 1)
    out = {f"sent_{unit}": 0, f"acked_{unit}": 0, "refused": 0, "errors": 0, "requests": len(index),
           "latencies_ms": [], "first_error": None}
    lock = threading.Lock()
    with open(spool / "requests.bin", "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        start = time.monotonic()
        threads = [threading.Thread(target=_worker, args=(host, int(port), path, headers, data, work, unit,
                                                          attempts, out, lock)) for _ in range(connections)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out["seconds"] = time.monotonic() - start
    return out
