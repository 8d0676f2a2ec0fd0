from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from lookout.buffer.log import SIGNALS, LogFull
from lookout.buffer.wal import WriteAheadLog

ROOT = Path(__file__).resolve().parents[1]


def rec_size(tenant: str, payload: bytes) -> int:
    return 8 + 4 + len(tenant.encode()) + 8 + len(payload)


def segs(directory: Path, signal: str = "traces") -> list[Path]:
    return sorted((directory / signal).glob("*.seg"))


def read_all(wal: WriteAheadLog, signal: str, start: int = 0):
    out, off = [], start
    while True:
        batch = wal.read(signal, off, max_bytes=1 << 16)
        if not batch:
            return out
        out.extend(batch)
        off = batch[-1].next_offset


def test_round_trip_several_signals_and_tenants(tmp_path):
    with WriteAheadLog(tmp_path) as wal:
        written = []
        for i in range(30):
            sig = SIGNALS[i % 3]
            tenant = ["default", "acme", "ünïcode"][i % 3 if i % 2 else 0]
            payload = os.urandom(1 + 37 * i)
            off = wal.append_sync(sig, tenant, payload)
            written.append((sig, off, tenant, payload))
        for sig in SIGNALS:
            mine = [w for w in written if w[0] == sig]
            offs = [w[1] for w in mine]
            assert offs == sorted(offs) and len(set(offs)) == len(offs)
            assert offs[0] == 0
            recs = wal.read(sig, 0)
            assert [(r.offset, r.tenant, r.payload) for r in recs] == [(o, t, p) for _, o, t, p in mine]
            for a, b in zip(recs, recs[1:], strict=False):
                assert a.next_offset == b.offset
            assert recs[-1].next_offset == wal.end_offset(sig)
            assert all(r.signal == sig and r.recv_ns > 0 for r in recs)
            # read from a middle offset, and with a small max_bytes
            mid = recs[4]
            assert [r.offset for r in wal.read(sig, mid.offset)] == offs[4:]
            assert len(wal.read(sig, mid.offset, max_bytes=1)) == 1
            assert wal.read(sig, wal.end_offset(sig)) == []


def test_offsets_are_byte_positions_and_unknown_signal(tmp_path):
    with WriteAheadLog(tmp_path) as wal:
        a = wal.append_sync("logs", "t", b"abc")
        b = wal.append_sync("logs", "t", b"defg")
        assert (a, b) == (0, rec_size("t", b"abc"))
        assert wal.end_offset("logs") == b + rec_size("t", b"defg")
        with pytest.raises(ValueError):
            wal.append_sync("profiles", "t", b"x")
        with pytest.raises(ValueError):
            wal.read("nope", 0)


def test_rollover_and_reads_spanning_segments(tmp_path):
    with WriteAheadLog(tmp_path, segment_bytes=1000) as wal:
        payloads = [bytes([i]) * (50 + 13 * i) for i in range(40)]
        offs = [wal.append_sync("metrics", "default", p) for p in payloads]
        files = segs(tmp_path, "metrics")
        assert len(files) > 5
        assert wal.stats()["signals"]["metrics"]["segments"] == len(files)
        for f in files:  # a record never spans segments; a segment holds at most segment_bytes
            assert f.stat().st_size <= 1000
        # each file is named after the offset of its first record
        assert {int(f.stem) for f in files} <= set(offs)
        recs = read_all(wal, "metrics")
        assert [r.payload for r in recs] == payloads
        assert [r.offset for r in recs] == offs
        # from the middle of a middle segment, one read spanning several segments
        recs = wal.read("metrics", offs[17], max_bytes=1 << 20)
        assert [r.payload for r in recs] == payloads[17:]
    # reopened: same content, appends continue at the end
    with WriteAheadLog(tmp_path, segment_bytes=1000) as wal:
        assert [r.payload for r in read_all(wal, "metrics")] == payloads
        end = wal.end_offset("metrics")
        assert wal.append_sync("metrics", "default", b"more") == end


def test_oversized_record_gets_its_own_segment(tmp_path):
    with WriteAheadLog(tmp_path, segment_bytes=100) as wal:
        wal.append_sync("traces", "t", b"a" * 10)
        big = wal.append_sync("traces", "t", b"b" * 500)
        wal.append_sync("traces", "t", b"c" * 10)
        assert int(segs(tmp_path)[1].stem) == big
        assert [len(r.payload) for r in wal.read("traces", 0)] == [10, 500, 10]


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from lookout.buffer.wal import WriteAheadLog

    wal = WriteAheadLog(sys.argv[1], segment_bytes=256 << 10)

    def payload(i):
        return (b"%08d" % i) * (1 + (i * 7919) % 700)

    async def worker(k, n):
        i = k
        while True:
            off = await wal.append("traces", f"t{i % 3}", payload(i))
            sys.stdout.write("%d %d\\n" % (i, off))
            sys.stdout.flush()
            i += n

    async def main():
        await asyncio.gather(*(worker(k, 4) for k in range(4)))

    asyncio.run(main())
    """
)


def test_sigkill_loses_no_acknowledged_record(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, env=env, text=True
    )
    acked = []
    try:
        assert proc.stdout is not None
        while len(acked) < 400:
            line = proc.stdout.readline()
            assert line, "child died"
            acked.append(tuple(map(int, line.split())))
        os.kill(proc.pid, signal.SIGKILL)
        acked.extend(tuple(map(int, ln.split())) for ln in proc.stdout.read().splitlines() if ln.strip())
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with WriteAheadLog(tmp_path, segment_bytes=256 << 10) as wal:
        recs = {r.offset: r for r in read_all(wal, "traces")}
        for i, off in acked:
            r = recs[off]
            assert r.tenant == f"t{i % 3}"
            assert r.payload == (b"%08d" % i) * (1 + (i * 7919) % 700)
        st = wal.stats()["signals"]["traces"]
        assert st["corrupt_records"] == 0
        # the log is usable after the crash
        end = wal.end_offset("traces")
        assert wal.append_sync("traces", "t", b"after") == end
        assert wal.read("traces", end)[0].payload == b"after"


@pytest.mark.parametrize(
    "damage",
    ["truncate_header", "truncate_payload", "garbage_short", "garbage_long", "zeros"],
)
def test_torn_tail_is_counted_truncated_and_appends_continue(tmp_path, damage, caplog):
    with WriteAheadLog(tmp_path) as wal:
        offs = [wal.append_sync("logs", "t", b"payload-%d" % i) for i in range(3)]
        end = wal.end_offset("logs")
    (f,) = segs(tmp_path, "logs")
    size = f.stat().st_size
    if damage == "truncate_header":
        os.truncate(f, offs[2] + 5)
        good = offs[2]
    elif damage == "truncate_payload":
        os.truncate(f, size - 3)
        good = offs[2]
    else:
        tail = {
            "garbage_short": b"\x07\x00\x00",
            "garbage_long": b"\xff" * 40,
            "zeros": b"\x00" * 4096,
        }[damage]
        with open(f, "ab") as fh:
            fh.write(tail)
        good = end
    with WriteAheadLog(tmp_path) as wal:
        st = wal.stats()["signals"]["logs"]
        assert st["torn_tail_records"] == 1
        assert st["corrupt_records"] == 0
        assert f.stat().st_size == good
        assert wal.end_offset("logs") == good
        assert str(f) in caplog.text and "payload-" not in caplog.text
        n = 3 if good == end else 2
        assert [r.payload for r in wal.read("logs", 0)] == [b"payload-%d" % i for i in range(n)]
        assert wal.append_sync("logs", "t", b"new") == good
        assert [r.payload for r in wal.read("logs", 0)][-1] == b"new"
    with WriteAheadLog(tmp_path) as wal:  # clean now
        assert wal.stats()["signals"]["logs"]["torn_tail_records"] == 0
        assert len(wal.read("logs", 0)) == n + 1


def test_crc_mismatch_in_last_segment_truncates(tmp_path, caplog):
    with WriteAheadLog(tmp_path) as wal:
        offs = [wal.append_sync("traces", "t", b"secret-%d" % i) for i in range(4)]
    (f,) = segs(tmp_path)
    data = bytearray(f.read_bytes())
    data[offs[2] + 25] ^= 0x01  # inside record 2's payload
    f.write_bytes(bytes(data))
    with WriteAheadLog(tmp_path) as wal:
        st = wal.stats()["signals"]["traces"]
        assert (st["corrupt_records"], st["torn_tail_records"]) == (1, 0)
        assert [r.payload for r in wal.read("traces", 0)] == [b"secret-0", b"secret-1"]
        assert wal.end_offset("traces") == offs[2]
        assert "crc" in caplog.text and "secret" not in caplog.text


def test_corrupt_record_in_older_segment_skips_rest_of_segment(tmp_path):
    with WriteAheadLog(tmp_path, segment_bytes=200) as wal:
        offs = [wal.append_sync("traces", "t", b"%05d" % i * 10) for i in range(20)]
    files = segs(tmp_path)
    assert len(files) >= 5
    first = files[0]
    data = bytearray(first.read_bytes())
    per_seg = len([o for o in offs if o < int(files[1].stem)])
    assert per_seg >= 2
    data[offs[1] + 30] ^= 0xFF  # the 2nd record of the oldest segment (not checked at startup)
    first.write_bytes(bytes(data))
    with WriteAheadLog(tmp_path, segment_bytes=200) as wal:
        assert wal.stats()["signals"]["traces"]["corrupt_records"] == 0
        got = [r.offset for r in read_all(wal, "traces")]
        assert got == [offs[0]] + offs[per_seg:]
        assert wal.stats()["signals"]["traces"]["corrupt_records"] == 1
        read_all(wal, "traces")  # counted once, not once per read
        assert wal.stats()["signals"]["traces"]["corrupt_records"] == 1


def test_commit_persists_across_reopen(tmp_path):
    with WriteAheadLog(tmp_path) as wal:
        offs = [wal.append_sync("traces", "t", b"x" * 10) for _ in range(5)]
        assert wal.committed("g1", "traces") == 0
        wal.commit("g1", "traces", offs[3])
        wal.commit("g2", "logs", 0)
        wal.commit("g1", "traces", offs[4])
        with pytest.raises(ValueError):
            wal.commit("g1", "traces", wal.end_offset("traces") + 1)
        assert wal.committed("g1", "traces") == offs[4]
    assert not list(tmp_path.glob("*.tmp"))
    with WriteAheadLog(tmp_path) as wal:
        assert wal.committed("g1", "traces") == offs[4]
        assert wal.committed("g2", "logs") == 0
        assert wal.committed("g1", "metrics") == 0
        assert wal.committed("never", "traces") == 0
        st = wal.stats()
        assert st["lag"]["g1"]["traces"] == wal.end_offset("traces") - offs[4]


def test_trim_deletes_only_fully_consumed_inactive_segments(tmp_path):
    with WriteAheadLog(tmp_path, segment_bytes=300) as wal:
        for i in range(20):
            wal.append_sync("traces", "t", b"%03d" % i * 20)
        wal.append_sync("logs", "t", b"l" * 500)
        wal.append_sync("logs", "t", b"l" * 500)
        files = segs(tmp_path)
        bases = [int(f.stem) for f in files]
        assert len(bases) >= 6
        assert wal.trim() == 0  # nobody committed: nothing is deleted
        wal.commit("a", "traces", bases[3])
        wal.commit("b", "traces", bases[2])
        before = wal.stats()["total_bytes"]
        assert wal.trim() == 2  # segments 0 and 1 end at or before min(a, b) = bases[2]
        assert [int(f.stem) for f in segs(tmp_path)] == bases[2:]
        assert wal.stats()["total_bytes"] < before
        assert len(segs(tmp_path, "logs")) == 2  # no group committed on logs
        assert wal.committed("new", "traces") == bases[2]
        assert wal.read("traces", 0)[0].offset == bases[2]  # trimmed offsets read from the start
        # everything consumed: all but the active segment go
        end = wal.end_offset("traces")
        wal.commit("a", "traces", end)
        wal.commit("b", "traces", end)
        wal.trim()
        assert [int(f.stem) for f in segs(tmp_path)] == [bases[-1]]
        assert wal.read("traces", end) == []
        assert wal.append_sync("traces", "t", b"next") == end
    with WriteAheadLog(tmp_path, segment_bytes=300) as wal:
        assert [r.payload for r in wal.read("traces", 0)][-1] == b"next"


def test_log_full_changes_nothing(tmp_path):
    size = rec_size("t", b"x" * 100)
    with WriteAheadLog(tmp_path, max_bytes=3 * size + 10, segment_bytes=2 * size) as wal:
        for _ in range(3):
            wal.append_sync("traces", "t", b"x" * 100)
        # the bound is per signal: a full traces log does not block metrics
        wal.append_sync("metrics", "t", b"x" * 100)
        before = wal.stats()
        files = {f: f.stat().st_size for f in segs(tmp_path)}
        with pytest.raises(LogFull) as ei:
            wal.append_sync("traces", "t", b"x" * 100)
        assert ei.value.retry_after_s > 0
        with pytest.raises(LogFull):
            asyncio.run(wal.append("traces", "t", b"x" * 100))
        after = wal.stats()
        assert after["total_bytes"] == before["total_bytes"] == 4 * size
        for s in SIGNALS:
            a, b = after["signals"][s], before["signals"][s]
            assert (a["end_offset"], a["bytes"], a["segments"]) == (
                b["end_offset"],
                b["bytes"],
                b["segments"],
            )
        assert after["signals"]["traces"]["refused_appends"] == 2
        assert {f: f.stat().st_size for f in segs(tmp_path)} == files
        assert len(wal.read("traces", 0)) == 3
        # consumers catch up, trim frees space, appends work again
        wal.commit("g", "traces", wal.end_offset("traces"))
        assert wal.trim() == 1
        wal.append_sync("traces", "t", b"x" * 100)


def test_concurrent_async_appends_are_group_committed(tmp_path):
    n = 1000

    async def main(wal):
        payloads = [os.urandom(2000) for _ in range(n)]
        offs = await asyncio.gather(*(wal.append("traces", f"t{i % 5}", p) for i, p in enumerate(payloads)))
        return payloads, offs

    with WriteAheadLog(tmp_path) as wal:
        payloads, offs = asyncio.run(main(wal))
        assert offs == sorted(offs) and len(set(offs)) == n  # written in call order
        st = wal.stats()["signals"]["traces"]
        assert st["appended_records"] == n
        assert 1 <= st["fsyncs"] <= n // 10, st
        assert st["pending_waiters"] == 0
        assert [r.payload for r in read_all(wal, "traces")] == payloads


def test_many_async_appenders_over_time(tmp_path):
    async def worker(wal, k):
        return [await wal.append(SIGNALS[k % 3], "t", b"%d-%d" % (k, i)) for i in range(50)]

    async def main(wal):
        return await asyncio.gather(*(worker(wal, k) for k in range(30)))

    with WriteAheadLog(tmp_path, commit_interval_s=0.002) as wal:
        asyncio.run(main(wal))
        total = sum(wal.stats()["signals"][s]["fsyncs"] for s in SIGNALS)
        assert total < 1500 // 5
        assert sum(len(read_all(wal, s)) for s in SIGNALS) == 1500


def test_read_returns_only_durable_records(tmp_path):
    with WriteAheadLog(tmp_path, commit_interval_s=1.0) as wal:
        wal.append_sync("traces", "t", b"first")  # an idle committer syncs at once
        t = threading.Thread(target=wal.append_sync, args=("traces", "t", b"second"))
        t0 = time.monotonic()
        t.start()
        while wal.end_offset("traces") == rec_size("t", b"first"):
            time.sleep(0.001)
        assert [r.payload for r in wal.read("traces", 0)] == [b"first"]
        assert wal.durable_offset("traces") < wal.end_offset("traces")
        t.join()
        assert time.monotonic() - t0 < 2.0
        assert [r.payload for r in wal.read("traces", 0)] == [b"first", b"second"]


def test_reader_thread_during_appends(tmp_path):
    n = 2000
    errors: list[BaseException] = []
    seen: list[bytes] = []

    def reader(wal):
        off = 0
        try:
            while len(seen) < n:
                for r in wal.read("traces", off, max_bytes=4096):
                    assert r.offset == off
                    seen.append(r.payload)
                    off = r.next_offset
        except BaseException as e:  # noqa: BLE001 - surfaced below
            errors.append(e)

    async def main(wal):
        for chunk in range(0, n, 100):
            await asyncio.gather(
                *(wal.append("traces", "t", b"%06d" % i * 9) for i in range(chunk, chunk + 100))
            )

    with WriteAheadLog(tmp_path, segment_bytes=8000) as wal:
        t = threading.Thread(target=reader, args=(wal,))
        t.start()
        asyncio.run(main(wal))
        t.join(10)
        assert not t.is_alive() and not errors
        assert seen == [b"%06d" % i * 9 for i in range(n)]


def test_append_sync_from_threads_and_no_fsync_mode(tmp_path):
    with WriteAheadLog(tmp_path / "a") as wal:
        res: list[int] = []

        def work():
            res.extend(wal.append_sync("logs", "t", b"y" * 100) for _ in range(50))

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(set(res)) == 200 and len(wal.read("logs", 0, max_bytes=1 << 20)) == 200
    with WriteAheadLog(tmp_path / "b", fsync=False, segment_bytes=500) as wal:
        offs = [asyncio.run(wal.append("logs", "t", b"z" * 100)) for _ in range(10)]
        assert [r.offset for r in read_all(wal, "logs")] == offs
        assert wal.stats()["signals"]["logs"]["fsyncs"] == 0


def test_close_is_idempotent_and_directory_is_locked(tmp_path):
    wal = WriteAheadLog(tmp_path)
    with pytest.raises(RuntimeError):
        WriteAheadLog(tmp_path)
    wal.append_sync("traces", "t", b"x")
    wal.close()
    wal.close()
    with pytest.raises(RuntimeError):
        wal.append_sync("traces", "t", b"x")
    with WriteAheadLog(tmp_path) as again:
        assert len(again.read("traces", 0)) == 1


def test_failed_fsync_fails_waiters_and_refuses_appends(tmp_path, monkeypatch):
    wal = WriteAheadLog(tmp_path)
    wal.append_sync("traces", "t", b"ok")

    def boom(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", boom)
    with pytest.raises(OSError):
        asyncio.run(wal.append("traces", "t", b"lost"))
    with pytest.raises(OSError):
        wal.append_sync("logs", "t", b"refused")
    assert wal.stats()["failed"]
    assert [r.payload for r in wal.read("traces", 0)] == [b"ok"]
    monkeypatch.undo()
    wal.close()
