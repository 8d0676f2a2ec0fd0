"""WAL append throughput with concurrent async appenders on one event loop.

Each appender awaits ``WriteAheadLog.append`` in a loop (so it has at most one request in flight,
like one receiver connection); the committer thread group-commits with fdatasync. Prints the
median of 3 runs for 24 KB (~50 spans) and 457 KB (~1,000 spans) payloads.

    .venv/bin/python bench/bench_wal.py [--dir DIR] [--seconds 2] [--appenders 32] [--no-fsync]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lookout.buffer.wal import WriteAheadLog  # noqa: E402

SIZES = [("24 KB", 24_000), ("457 KB", 457_000)]


async def _run(wal: WriteAheadLog, payload: bytes, appenders: int, seconds: float) -> int:
    stop = time.perf_counter() + seconds
    count = 0

    async def appender() -> None:
        nonlocal count
        while time.perf_counter() < stop:
            await wal.append("traces", "default", payload)
            count += 1

    await asyncio.gather(*(appender() for _ in range(appenders)))
    return count


def one_run(root: Path, size: int, args: argparse.Namespace) -> dict[str, float]:
    d = Path(tempfile.mkdtemp(prefix="bench-wal-", dir=root))
    try:
        wal = WriteAheadLog(d, max_bytes=1 << 40, fsync=not args.no_fsync)
        payload = os.urandom(size)
        reader_stop = threading.Event()
        read_records = 0

        def reader() -> None:  # a consumer tailing the log, as the pipeline does
            nonlocal read_records
            off = 0
            while not reader_stop.is_set():
                recs = wal.read("traces", off)
                if recs:
                    off = recs[-1].next_offset
                    read_records += len(recs)
                    if args.trim:
                        wal.commit("bench", "traces", off)
                        wal.trim()
                else:
                    time.sleep(0.001)

        t = threading.Thread(target=reader, daemon=True)
        if args.reader:
            t.start()
        t0 = time.perf_counter()
        n = asyncio.run(_run(wal, payload, args.appenders, args.seconds))
        dt = time.perf_counter() - t0
        reader_stop.set()
        if args.reader:
            t.join()
        st = wal.stats()["signals"]["traces"]
        wal.close()
        return {
            "appends_s": n / dt,
            "mb_s": n * size / dt / 1e6,
            "fsyncs_s": st["fsyncs"] / dt,
            "per_fsync": n / max(st["fsyncs"], 1),
            "fsync_ms": 1e3 * st["fsync_seconds_sum"] / max(st["fsyncs"], 1),
        }
    finally:
        shutil.rmtree(d, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", default=None, help="where to put the WAL (default: system temp dir)")
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--appenders", type=int, default=32)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--no-fsync", action="store_true")
    p.add_argument("--reader", action="store_true", help="also tail the log from a consumer thread")
    p.add_argument("--trim", action="store_true", help="with --reader: commit and trim as it goes")
    args = p.parse_args()
    root = Path(args.dir or tempfile.gettempdir())
    print(
        f"WAL bench: {args.appenders} async appenders, {args.seconds:g} s x {args.runs} runs, "
        f"fsync={'off' if args.no_fsync else 'on'}, reader={'on' if args.reader else 'off'}, dir={root}"
    )
    print(f"{'payload':>8} {'appends/s':>10} {'MB/s':>8} {'fsyncs/s':>9} {'per fsync':>10} {'fsync ms':>9}")
    for label, size in SIZES:
        runs = [one_run(root, size, args) for _ in range(args.runs)]
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(
            f"{label:>8} {med['appends_s']:>10,.0f} {med['mb_s']:>8,.0f} {med['fsyncs_s']:>9,.0f} "
            f"{med['per_fsync']:>10,.1f} {med['fsync_ms']:>9.2f}"
        )


if __name__ == "__main__":
    main()
