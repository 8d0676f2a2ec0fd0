"""The embedded write-ahead log: one append-only, segmented log per signal on local disk.

Layout (``directory`` is the WAL root)::

    directory/LOCK                              flock'ed by the one process that owns the WAL
    directory/consumers.json                    committed offsets {group: {signal: offset}}
    directory/<signal>/<first_offset:020d>.seg  append-only segments, ``segment_bytes`` each

Record (little-endian)::

    u32 len | u32 crc32 | u8 type | u8 flags | u16 tenant_len | tenant utf-8 | i64 recv_ns | payload

``len`` counts the bytes after the crc field (type .. payload), so a record occupies ``8 + len``
bytes; ``crc32`` (zlib) covers the same bytes. An offset is a logical byte position: the segment's
first offset (its file name) plus the byte position inside the segment, as in Kafka. A record never
spans segments. After a crash-time truncation there may be a gap between the end of one segment and
the first offset of the next; readers simply continue at the next segment.

Durability: ``append`` writes the record at once (``os.writev`` on an ``O_APPEND`` fd, under a
lock shared with readers and the committer), then waits for a background committer thread that
calls ``fdatasync`` at most every ``commit_interval_s`` (or sooner when ``commit_bytes`` are
pending) and then resolves the waiting futures on their event loops with
``loop.call_soon_threadsafe``. The event loop never waits on the disk. ``read`` returns only
records that are already durable.
"""

from __future__ import annotations

import asyncio
import bisect
import concurrent.futures
import contextlib
import errno
import fcntl
import json
import logging
import os
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lookout.buffer.log import SIGNALS, LogFull, Record

__all__ = ["WriteAheadLog", "TYPE_DATA"]

log = logging.getLogger(__name__)

_HDR = struct.Struct("<IIBBH")  # len, crc32, type, flags, tenant_len
_LEN_CRC = struct.Struct("<II")
_BODY_HEAD = struct.Struct("<BBH")  # type, flags, tenant_len
_NS = struct.Struct("<q")
_HDR_SIZE = _HDR.size  # 12
_MIN_BODY = _BODY_HEAD.size + _NS.size  # 12: body without tenant and payload
_MAX_LEN = 0xFFFFFFFF

TYPE_DATA = 1
_KNOWN_FLAGS = 0  # bit 0 is reserved for zstd-compressed payloads (not written yet)

_SEG_SUFFIX = ".seg"
_CONSUMERS = "consumers.json"
_RECOVERY_SEGMENTS = 2  # how many trailing segments per signal are fully checked at startup

_OK, _TORN, _CORRUPT = "ok", "torn", "corrupt"
_IDLE, _TIMED, _BUSY = 0, 1, 2  # committer states (when appenders need to wake it)


def _seg_name(base: int) -> str:
    return f"{base:020d}{_SEG_SUFFIX}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Scan:
    """Iterate the valid records of one segment file between byte positions [start, limit).

    Yields ``(pos, end, tenant, recv_ns, payload)`` with positions relative to the segment and the
    tenant/payload as memoryviews into a read buffer (or None for both when ``payload=False``).
    When iteration ends, ``self.pos`` is the end of the last good record and ``self.status`` says
    why it stopped: ``ok`` (reached ``limit``), ``torn`` (a short header or body: the data ends
    inside a record) or ``corrupt`` (bad length, type, flags or CRC); ``self.reason`` explains.
    """

    def __init__(self, fd: int, start: int, limit: int, chunk: int = 1 << 20, payload: bool = True):
        self.fd = fd
        self.pos = start
        self.limit = limit
        self.chunk = max(chunk, 64 << 10)
        self.payload = payload
        self.status = _OK
        self.reason = ""

    def __iter__(self) -> Iterator[tuple[int, int, Any, int, Any]]:
        fd, limit = self.fd, self.limit
        buf = memoryview(b"")
        boff = self.pos  # segment position of buf[0]
        pos = self.pos
        while pos < limit:
            rel = pos - boff
            if rel + _HDR_SIZE > len(buf):
                buf = memoryview(os.pread(fd, min(self.chunk, limit - pos), pos))
                boff, rel = pos, 0
                if len(buf) < _HDR_SIZE:
                    self._stop(_TORN, f"short header ({len(buf)} of {_HDR_SIZE} bytes)")
                    return
            length, crc, typ, flags, tlen = _HDR.unpack_from(buf, rel)
            if length == 0:
                self._stop(_TORN, "zero length (zero-filled tail)")
                return
            if length < _MIN_BODY + tlen:
                self._stop(_CORRUPT, f"implausible length {length} (tenant length {tlen})")
                return
            total = 8 + length
            if pos + total > limit:
                self._stop(_TORN, f"short record ({limit - pos} of {total} bytes)")
                return
            if rel + total > len(buf):
                buf = memoryview(os.pread(fd, max(self.chunk, total), pos))
                boff, rel = pos, 0
                if len(buf) < total:
                    self._stop(_TORN, f"short record ({len(buf)} of {total} bytes)")
                    return
            body = buf[rel + 8 : rel + total]
            if zlib.crc32(body) != crc:
                self._stop(_CORRUPT, "crc mismatch")
                return
            if typ != TYPE_DATA or flags & ~_KNOWN_FLAGS:
                self._stop(_CORRUPT, f"unknown type {typ} or flags {flags:#x}")
                return
            if self.payload:
                t0 = _BODY_HEAD.size
                tenant = body[t0 : t0 + tlen]
                (recv_ns,) = _NS.unpack_from(body, t0 + tlen)
                yield pos, pos + total, tenant, recv_ns, body[t0 + tlen + 8 :]
            else:
                yield pos, pos + total, None, 0, None
            pos += total
            self.pos = pos

    def _stop(self, status: str, reason: str) -> None:
        self.status = status
        self.reason = reason


class _Segment:
    __slots__ = ("base", "path", "size")

    def __init__(self, base: int, path: Path, size: int) -> None:
        self.base = base
        self.path = path
        self.size = size  # bytes written (all of them valid records)


class _Signal:
    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.dir = directory
        self.segments: list[_Segment] = []
        self.bases: list[int] = []  # segment bases, for bisect
        self.fd = -1  # O_APPEND fd of the active (last) segment
        self.write_end = 0  # logical end of written data: the next append's offset
        self.durable_end = 0  # logical end of fsynced data: readers stop here
        self.retired: list[int] = []  # fds of rolled-over segments not yet fsynced and closed
        self.dir_dirty = False  # a new segment file whose directory entry is not yet fsynced
        self.need_roll = False  # start a new segment before the next append
        self.waiters: deque[tuple[int, asyncio.AbstractEventLoop | None, Any]] = deque()
        self.reported: set[tuple[int, int]] = set()  # (segment base, pos) of reported corruption
        # counters
        self.appended_records = 0
        self.appended_bytes = 0
        self.refused = 0
        self.fsyncs = 0
        self.fsync_seconds = 0.0
        self.corrupt_records = 0
        self.torn_tail_records = 0

    @property
    def active(self) -> _Segment:
        return self.segments[-1]

    def disk_bytes(self) -> int:
        return sum(s.size for s in self.segments)


def _set_results(futs: list[asyncio.Future[None]], exc: BaseException | None) -> None:
    for fut in futs:
        if not fut.done():
            if exc is None:
                fut.set_result(None)
            else:
                fut.set_exception(exc)


class WriteAheadLog:
    """The embedded ``Log``: segmented, CRC-checked, group-committed, one log per signal.

    Thread-safety: ``append`` is meant for one or more asyncio event loops, ``append_sync`` for
    plain threads; ``read``, ``commit``, ``trim`` and ``stats`` may be called from any thread at
    the same time. ``commit`` writes and fsyncs a small file (about a millisecond); call it through
    ``asyncio.to_thread`` from a busy event loop.
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        segment_bytes: int = 64 << 20,
        max_bytes: int = 8 << 30,
        commit_interval_s: float = 0.005,
        commit_bytes: int = 1 << 20,
        fsync: bool = True,
    ) -> None:
        if segment_bytes <= 0 or max_bytes <= 0 or commit_bytes <= 0 or commit_interval_s < 0:
            raise ValueError("segment_bytes, max_bytes and commit_bytes must be > 0, commit_interval_s >= 0")
        self.directory = Path(directory)
        self._segment_bytes = segment_bytes
        self._max_bytes = max_bytes
        self._interval = commit_interval_s
        self._commit_bytes = commit_bytes
        self._fsync = fsync

        self._lock = threading.Lock()  # all log state; never held across an fsync
        self._cv = threading.Condition(self._lock)  # wakes the committer
        self._cons_lock = threading.Lock()  # consumer offsets and their file
        self._closed = False
        self._stopping = False
        self._failed: OSError | None = None  # a failed fsync poisons the log
        self._pending = 0  # bytes written since the committer last started a sync
        self._cstate = _BUSY
        self._last_sync = 0.0
        self._total_bytes = 0
        self._signals: dict[str, _Signal] = {}
        self._lock_fd = -1
        self._committer: threading.Thread | None = None

        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.directory / "LOCK", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(self._lock_fd)
            self._lock_fd = -1
            raise RuntimeError(f"WAL directory {self.directory} is in use by another process") from e
        try:
            for name in SIGNALS:
                sig = self._open_signal(name)
                self._signals[name] = sig
                self._total_bytes += sig.disk_bytes()
            _fsync_dir(self.directory)
            self._consumers = self._load_consumers()
        except BaseException:
            self._release()
            raise
        if fsync:
            self._committer = threading.Thread(target=self._run_committer, name="wal-committer", daemon=True)
            self._committer.start()

    # ------------------------------------------------------------------ recovery

    def _open_signal(self, name: str) -> _Signal:
        d = self.directory / name
        d.mkdir(exist_ok=True)
        sig = _Signal(name, d)
        bases = []
        for entry in os.listdir(d):
            if entry.endswith(".tmp"):
                (d / entry).unlink(missing_ok=True)
            elif entry.endswith(_SEG_SUFFIX) and entry[: -len(_SEG_SUFFIX)].isdigit():
                bases.append(int(entry[: -len(_SEG_SUFFIX)]))
        bases.sort()
        for base in bases:
            path = d / _seg_name(base)
            sig.segments.append(_Segment(base, path, os.stat(path).st_size))
        for seg in sig.segments[-_RECOVERY_SEGMENTS:]:
            self._recover_segment(sig, seg)
        for a, b in zip(sig.segments, sig.segments[1:], strict=False):
            if a.base + a.size > b.base:
                log.warning(
                    "WAL %s: segment %s (%d bytes) overlaps the next segment %s",
                    name,
                    a.path,
                    a.size,
                    b.path.name,
                )
        if not sig.segments:
            path = d / _seg_name(0)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644))
            sig.segments.append(_Segment(0, path, 0))
        _fsync_dir(d)
        sig.bases = [s.base for s in sig.segments]
        act = sig.active
        sig.fd = os.open(act.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        sig.write_end = sig.durable_end = act.base + act.size
        return sig

    def _recover_segment(self, sig: _Signal, seg: _Segment) -> None:
        """Check every record of a trailing segment; truncate at the last good one. The file is
        fsynced, so what readers see after startup is durable even if the writer died before its
        own fsync."""
        fd = os.open(seg.path, os.O_RDWR | os.O_CLOEXEC)
        try:
            scan = _Scan(fd, 0, seg.size, chunk=4 << 20, payload=False)
            for _ in scan:
                pass
            if scan.status != _OK:
                if scan.status == _TORN:
                    sig.torn_tail_records += 1
                else:
                    sig.corrupt_records += 1
                log.warning(
                    "WAL %s: %s record in %s at byte %d (offset %d): %s; truncating %d bytes",
                    sig.name,
                    scan.status,
                    seg.path,
                    scan.pos,
                    seg.base + scan.pos,
                    scan.reason,
                    seg.size - scan.pos,
                )
                os.ftruncate(fd, scan.pos)
                seg.size = scan.pos
            os.fsync(fd)
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ append

    def _sig(self, signal: str) -> _Signal:
        try:
            return self._signals[signal]
        except KeyError:
            raise ValueError(f"unknown signal {signal!r}; expected one of {SIGNALS}") from None

    @staticmethod
    def _encode(tenant: str, payload: bytes) -> bytes:
        tb = tenant.encode("utf-8")
        if len(tb) > 0xFFFF:
            raise ValueError("tenant is longer than 65535 bytes")
        length = _MIN_BODY + len(tb) + len(payload)
        if length > _MAX_LEN:
            raise ValueError(f"record of {length} bytes is too large")
        head = _BODY_HEAD.pack(TYPE_DATA, 0, len(tb)) + tb + _NS.pack(time.time_ns())
        crc = zlib.crc32(payload, zlib.crc32(head))
        return _LEN_CRC.pack(length, crc) + head

    def _write(self, signal: str, tenant: str, payload: bytes, loop: Any, fut: Any) -> int:
        """Write one record now; register ``fut`` to be resolved once it is durable. Returns the
        record's offset. Raises LogFull (nothing written) when the signal's log is at ``max_bytes``."""
        sig = self._sig(signal)
        if not isinstance(payload, bytes | bytearray):
            payload = bytes(payload)
        header = self._encode(tenant, payload)
        total = len(header) + len(payload)
        with self._lock:
            if self._closed:
                raise RuntimeError("the WAL is closed")
            if self._failed is not None:
                raise OSError(self._failed.errno, f"the WAL failed earlier: {self._failed}")
            sig_bytes = sig.disk_bytes()
            if sig_bytes + total > self._max_bytes:
                # Per signal: a signal nobody consumes yet (metrics, logs) must not block traces.
                sig.refused += 1
                raise LogFull(
                    f"WAL for {signal} is full ({sig_bytes} + {total} bytes > max_bytes {self._max_bytes}); "
                    "consumers must catch up before the log is trimmed",
                    retry_after_s=1.0,
                )
            seg = sig.active
            if seg.size > 0 and (sig.need_roll or seg.size + total > self._segment_bytes):
                self._roll(sig)
                seg = sig.active
            self._write_all(sig, seg, header, payload, total)
            offset = sig.write_end
            seg.size += total
            sig.write_end += total
            self._total_bytes += total
            sig.appended_records += 1
            sig.appended_bytes += total
            if not self._fsync:
                sig.durable_end = sig.write_end
            else:
                if fut is not None:
                    sig.waiters.append((sig.write_end, loop, fut))
                self._pending += total
                if self._cstate == _IDLE or (self._cstate == _TIMED and self._pending >= self._commit_bytes):
                    self._cv.notify()
        return offset

    def _write_all(self, sig: _Signal, seg: _Segment, header: bytes, payload: bytes, total: int) -> None:
        fd = sig.fd
        try:
            n = os.writev(fd, (header, payload))
            while n < total:  # a short write (rare on regular files): write the rest
                rest = (header + payload)[n:] if n < len(header) else memoryview(payload)[n - len(header) :]
                w = os.write(fd, rest)
                if w <= 0:
                    raise OSError(errno.EIO, "write returned 0")
                n += w
        except OSError as e:
            try:  # undo a partial write, so the segment ends on a record boundary
                os.ftruncate(fd, seg.size)
            except OSError:
                sig.need_roll = True  # the garbage tail stays beyond seg.size; never read
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                sig.refused += 1
                raise LogFull(f"WAL disk is full: {e}", retry_after_s=5.0) from e
            raise

    def _roll(self, sig: _Signal) -> None:
        """Start a new segment at ``write_end`` (called with the lock held). The old fd is
        fsynced and closed by the committer (or closed at once without fsync)."""
        base = sig.write_end
        path = sig.dir / _seg_name(base)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        if self._fsync:
            sig.retired.append(sig.fd)
            sig.dir_dirty = True
        else:
            os.close(sig.fd)
        sig.fd = fd
        sig.segments.append(_Segment(base, path, 0))
        sig.bases.append(base)
        sig.need_roll = False

    async def append(self, signal: str, tenant: str, payload: bytes) -> int:
        """Append one record; return its offset once it is durable. The write itself happens
        before the first await (so records of one loop are ordered by call); the fsync happens
        on the committer thread."""
        if not self._fsync:
            return self._write(signal, tenant, payload, None, None)
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        offset = self._write(signal, tenant, payload, loop, fut)
        await fut
        return offset

    def append_sync(self, signal: str, tenant: str, payload: bytes) -> int:
        """Append one record from a plain thread; blocks until it is durable."""
        if not self._fsync:
            return self._write(signal, tenant, payload, None, None)
        fut: concurrent.futures.Future[None] = concurrent.futures.Future()
        offset = self._write(signal, tenant, payload, None, fut)
        fut.result()
        return offset

    # ------------------------------------------------------------------ group commit

    def _run_committer(self) -> None:
        while True:
            with self._cv:
                while self._pending == 0 and not self._stopping:
                    self._cstate = _IDLE
                    self._cv.wait()
                if self._pending == 0:  # stopping, nothing left
                    self._cstate = _BUSY
                    return
                self._cstate = _TIMED
                deadline = self._last_sync + self._interval
                while not self._stopping and self._pending < self._commit_bytes:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cv.wait(remaining)
                self._cstate = _BUSY
                self._pending = 0
            self._last_sync = time.monotonic()
            self._sync_all()

    def _sync_all(self) -> None:
        for sig in self._signals.values():
            with self._lock:
                if self._failed is not None:
                    return
                end = sig.write_end
                if end <= sig.durable_end and not sig.retired and not sig.dir_dirty:
                    continue
                fd, retired, dir_dirty = sig.fd, sig.retired, sig.dir_dirty
                sig.retired, sig.dir_dirty = [], False
            t0 = time.perf_counter()
            try:
                while retired:
                    os.fdatasync(retired[0])
                    os.close(retired.pop(0))
                os.fdatasync(fd)
                if dir_dirty:
                    _fsync_dir(sig.dir)
            except OSError as e:
                for rfd in retired:
                    with contextlib.suppress(OSError):
                        os.close(rfd)
                self._fail(e)
                return
            dt = time.perf_counter() - t0
            with self._lock:
                sig.fsyncs += 1
                sig.fsync_seconds += dt
                if end > sig.durable_end:
                    sig.durable_end = end
                done = []
                while sig.waiters and sig.waiters[0][0] <= end:
                    done.append(sig.waiters.popleft())
            self._resolve(done, None)

    @staticmethod
    def _resolve(done: list[tuple[int, Any, Any]], exc: BaseException | None) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        for _end, loop, fut in done:
            if loop is None:  # append_sync: a concurrent.futures.Future
                if exc is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(exc)
            else:
                by_loop.setdefault(loop, []).append(fut)
        for loop, futs in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
                loop.call_soon_threadsafe(_set_results, futs, exc)

    def _fail(self, e: OSError) -> None:
        """An fsync failed: the page cache may have dropped the data, so nothing pending can be
        acknowledged, and the log refuses further appends until it is reopened."""
        log.error("WAL fsync failed, refusing further appends: %s", e)
        with self._lock:
            self._failed = e
            done = []
            for sig in self._signals.values():
                done.extend(sig.waiters)
                sig.waiters.clear()
        self._resolve(done, OSError(e.errno, f"WAL fsync failed: {e}"))

    # ------------------------------------------------------------------ read

    def read(self, signal: str, from_offset: int, max_bytes: int = 8 << 20) -> list[Record]:
        """Durable records of ``signal`` from ``from_offset`` (a record boundary: an offset or
        next_offset seen before, ``committed`` or ``end_offset``), in order, up to about
        ``max_bytes`` of payload (at least one record when there is one). An offset before the
        start of the log (trimmed) reads from the start. A corrupt record skips the rest of its
        segment (counted once in ``corrupt_records``)."""
        sig = self._sig(signal)
        with self._lock:
            durable = sig.durable_end
            i = max(bisect.bisect_right(sig.bases, from_offset) - 1, 0)
            segs = [(s.base, s.size, s.path) for s in sig.segments[i:]]
        out: list[Record] = []
        if from_offset >= durable or not segs:
            return out
        pos_off = max(from_offset, segs[0][0])
        nbytes = 0
        chunk = min(max_bytes + (64 << 10), 8 << 20)
        for base, size, path in segs:
            pos_off = max(pos_off, base)
            limit = min(base + size, durable) - base
            start = pos_off - base
            if start >= limit:
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:  # trimmed meanwhile
                continue
            try:
                scan = _Scan(fd, start, limit, chunk=chunk)
                for pos, end, tenant, recv_ns, payload in scan:
                    out.append(
                        Record(signal, base + pos, base + end, str(tenant, "utf-8"), recv_ns, bytes(payload))
                    )
                    nbytes += len(payload)
                    if nbytes >= max_bytes:
                        return out
                if scan.status != _OK:
                    self._report_corrupt(sig, base, path, scan)
            finally:
                os.close(fd)
            if base + limit >= durable:
                break
        return out

    def _report_corrupt(self, sig: _Signal, base: int, path: Path, scan: _Scan) -> None:
        with self._lock:
            key = (base, scan.pos)
            if key in sig.reported:
                return
            sig.reported.add(key)
            sig.corrupt_records += 1
            if sig.active.base == base:
                sig.need_roll = True  # readers can only skip past it once a new segment exists
        log.warning(
            "WAL %s: corrupt record in %s at byte %d (offset %d): %s; skipping the rest of the segment",
            sig.name,
            path,
            scan.pos,
            base + scan.pos,
            scan.reason,
        )

    # ------------------------------------------------------------------ offsets

    def end_offset(self, signal: str) -> int:
        sig = self._sig(signal)
        with self._lock:
            return sig.write_end

    def durable_offset(self, signal: str) -> int:
        """The end of the fsynced records: ``read`` returns nothing at or beyond this."""
        sig = self._sig(signal)
        with self._lock:
            return sig.durable_end

    def start_offset(self, signal: str) -> int:
        """The first offset still on disk (the base of the oldest segment)."""
        sig = self._sig(signal)
        with self._lock:
            return sig.segments[0].base

    def _load_consumers(self) -> dict[str, dict[str, int]]:
        path = self.directory / _CONSUMERS
        tmp = path.with_name(_CONSUMERS + ".tmp")
        tmp.unlink(missing_ok=True)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return {}
        try:
            data = json.loads(raw)
            groups = data["groups"]
            return {
                str(g): {str(s): int(o) for s, o in offs.items() if s in SIGNALS}
                for g, offs in groups.items()
            }
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            # Written atomically, so this means outside damage. Resuming from the start of the log
            # re-delivers data (idempotent downstream) instead of losing it.
            log.error("WAL %s is unreadable (%s); consumers resume from the start of the log", path, e)
            return {}

    def _store_consumers(self) -> None:
        path = self.directory / _CONSUMERS
        tmp = path.with_name(_CONSUMERS + ".tmp")
        data = json.dumps({"version": 1, "groups": self._consumers}, sort_keys=True).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync_dir(self.directory)

    def commit(self, group: str, signal: str, offset: int) -> None:
        """Durably record that ``group`` consumed ``signal`` up to (excluding) ``offset``. A group
        that commits (even the start offset) holds back ``trim`` for that signal from then on."""
        self._sig(signal)
        if not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be a non-negative int, not {offset!r}")
        end = self.end_offset(signal)
        if offset > end:
            raise ValueError(f"offset {offset} is beyond the end of the {signal} log ({end})")
        with self._cons_lock:
            if self._closed:
                raise RuntimeError("the WAL is closed")
            groups = self._consumers
            old = groups.get(group, {}).get(signal)
            groups.setdefault(group, {})[signal] = offset
            try:
                self._store_consumers()
            except BaseException:
                if old is None:
                    del groups[group][signal]
                else:
                    groups[group][signal] = old
                raise

    def committed(self, group: str, signal: str) -> int:
        self._sig(signal)
        with self._cons_lock:
            off = self._consumers.get(group, {}).get(signal)
        return self.start_offset(signal) if off is None else off

    def trim(self) -> int:
        """Delete the segments that every group that has committed on their signal has passed
        (segment end <= the smallest committed offset); never the active segment, nothing of a
        signal no group has committed on. Returns the number of segments deleted."""
        with self._cons_lock:
            lows: dict[str, int] = {}
            for offs in self._consumers.values():
                for s, o in offs.items():
                    lows[s] = min(o, lows.get(s, o))
        deleted = 0
        for name, low in lows.items():
            sig = self._signals[name]
            doomed: list[Path] = []
            with self._lock:
                while len(sig.segments) > 1 and sig.segments[0].base + sig.segments[0].size <= low:
                    seg = sig.segments.pop(0)
                    sig.bases.pop(0)
                    self._total_bytes -= seg.size
                    doomed.append(seg.path)
            for path in doomed:
                path.unlink(missing_ok=True)
            if doomed:
                _fsync_dir(sig.dir)
                deleted += len(doomed)
        return deleted

    # ------------------------------------------------------------------ stats, close

    def stats(self) -> dict[str, Any]:
        with self._lock:
            signals = {
                name: {
                    "start_offset": sig.segments[0].base,
                    "end_offset": sig.write_end,
                    "durable_offset": sig.durable_end,
                    "bytes": sig.disk_bytes(),
                    "segments": len(sig.segments),
                    "appended_records": sig.appended_records,
                    "appended_bytes": sig.appended_bytes,
                    "refused_appends": sig.refused,
                    "fsyncs": sig.fsyncs,
                    "fsync_seconds_sum": sig.fsync_seconds,
                    "corrupt_records": sig.corrupt_records,
                    "torn_tail_records": sig.torn_tail_records,
                    "pending_waiters": len(sig.waiters),
                }
                for name, sig in self._signals.items()
            }
            total = self._total_bytes
        with self._cons_lock:
            committed = {g: dict(offs) for g, offs in self._consumers.items()}
        lag = {
            g: {s: max(signals[s]["end_offset"] - o, 0) for s, o in offs.items()}
            for g, offs in committed.items()
        }
        return {
            "signals": signals,
            "committed": committed,
            "lag": lag,
            "total_bytes": total,
            "max_bytes": self._max_bytes,
            "failed": self._failed is not None,
        }

    def close(self) -> None:
        """Stop the committer (after it made everything durable), fsync, close. Idempotent."""
        with self._cv:
            if self._closed:
                return
            self._closed = True
            self._stopping = True
            self._cv.notify()
        if self._committer is not None:
            self._committer.join()
        with self._cons_lock:
            pass  # wait for a commit in progress
        err: OSError | None = None
        for sig in self._signals.values():
            with self._lock:
                fds = [*sig.retired, sig.fd]
                sig.retired, sig.fd = [], -1
                end = sig.write_end
                done = list(sig.waiters)
                sig.waiters.clear()
            for fd in fds:
                if fd < 0:
                    continue
                try:
                    if self._fsync and self._failed is None:
                        os.fdatasync(fd)
                except OSError as e:
                    err = err or e
                finally:
                    os.close(fd)
            with self._lock:
                sig.durable_end = max(sig.durable_end, end)
            if done:  # only after a failure: waiters the committer could not resolve
                self._resolve(done, OSError(errno.EIO, "the WAL closed before the record was durable"))
        self._release()
        if err is not None:
            raise err

    def _release(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = -1

    def __enter__(self) -> WriteAheadLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
