"""TraceStore without a server: the head, flush/commit ordering, failures that must not lose or
block data, trace lookup across head and blocks, and retention."""

from __future__ import annotations

import os
import time

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from lookout.buffer.log import Record
from lookout.config import Storage
from lookout.selfmon.registry import Registry
from lookout.storage.blocks import BlockStore
from lookout.traces.store import TraceStore


def request(trace_id: bytes, n: int, start: int | None = None) -> bytes:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    start = start if start is not None else time.time_ns()
    for i in range(n):
        ss.spans.add(trace_id=trace_id, span_id=os.urandom(8), name=f"s{i}",
                      start_time_unix_nano=start + i, end_time_unix_nano=start + i + 5)
    return req.SerializeToString()


def records(payloads: list[bytes], tenant: str = "t1", first_offset: int = 0) -> list[Record]:
    out, off = [], first_offset
    for p in payloads:
        out.append(Record("traces", off, off + len(p) + 30, tenant, 0, p))
        off += len(p) + 30
    return out


@pytest.fixture
def store(tmp_path):
    return TraceStore(BlockStore(tmp_path), Storage(), Registry())


def test_undecodable_request_is_counted_and_skipped_not_blocking(store):
    a, b = os.urandom(16), os.urandom(16)
    store.ingest(records([request(a, 3), b"\x0a\xff\xff\xff garbage", request(b, 2)]))
    assert store.find_trace("t1", a).num_rows == 3
    assert store.find_trace("t1", b).num_rows == 2
    assert store._dropped.get(signal="traces", tenant="t1", reason="decode_error") == 1


def test_flush_commits_after_blocks_and_lookup_spans_head_and_blocks(store):
    tid = os.urandom(16)
    recs = records([request(tid, 4)])
    store.ingest(recs)
    commits = []
    result = store.flush(commits.append)
    assert commits == [recs[-1].next_offset] and len(result.blocks) == 1
    assert store.head.rows == 0 and store.head.tables("t1") == []
    store.ingest(records([request(tid, 2)], first_offset=recs[-1].next_offset))
    assert store.find_trace("t1", tid).num_rows == 6  # 4 from the block, 2 from the head
    assert store.find_trace("t2", tid) is None  # another tenant sees nothing


def test_failed_flush_keeps_the_data_and_does_not_commit(store, monkeypatch):
    tid = os.urandom(16)
    store.ingest(records([request(tid, 3)]))

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(store.blocks, "write_block", boom)
    commits = []
    with pytest.raises(OSError):
        store.flush(commits.append)
    assert commits == []
    assert store.find_trace("t1", tid).num_rows == 3  # still served from the head
    monkeypatch.undo()
    store.flush(commits.append)
    assert len(commits) == 1 and store.head.rows == 0
    assert store.find_trace("t1", tid).num_rows == 3


def test_retention_deletes_old_blocks_only(store):
    old, new = os.urandom(16), os.urandom(16)
    day = 86400 * 10**9
    store.ingest(records([request(old, 2, start=time.time_ns() - 40 * day)]))
    store.flush(lambda off: None)
    store.ingest(records([request(new, 2)], first_offset=10_000))
    store.flush(lambda off: None)
    assert store.apply_retention() == 1
    assert store.find_trace("t1", old) is None and store.find_trace("t1", new).num_rows == 2
